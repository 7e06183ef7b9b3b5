"""RabbitMQ names and topology (docs/design.md, "RabbitMQ topology"), declared idempotently.

Every program that touches a queue declares the whole topology first with the
same arguments, so start-up order never matters. The queues' type and arguments
come from ``queue_types.QueueType`` (FARLOOM_QUEUE_TYPE); a queue made with
other ones stops the program with QueueMismatch, saying what to do.

A broker URL may name several nodes of one cluster, comma-separated
(FARLOOM_AMQP_URL): ``connect`` tries them in that order, so every reconnect
loop built on it fails over to the next node when one is down.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import AMQPConnectionError, AMQPError, ChannelClosed, ConnectionClosed

from farloom_tasks.errors import BrokerUnavailable
from farloom_tasks.stores.queue_types import (
    CLASSIC,
    QueueMismatch,
    QueueType,
    declare_queue,
    mismatch_message,
)

__all__ = ["CLASSIC", "QueueMismatch", "QueueType"]

TASKS_QUEUE = "farloom.tasks"  # Celery's queue (farloom_tasks/celery.py declares it too)
NOT_FOUND = 404  # AMQP reply code of a passive declare of a missing queue
CLICKS_EXCHANGE = "farloom.clicks"  # fanout: producers publish clicks here
INGEST_QUEUE = "farloom.clicks.ingest"  # competing ingest workers consume here
DEAD_EXCHANGE = "farloom.clicks.dead"  # fanout: invalid clicks, reason in headers
DEAD_QUEUE = "farloom.clicks.dead"
AGGREGATES_EXCHANGE = "farloom.aggregates"  # fanout: per-minute results from merge_minute
AGGREGATES_QUEUE = "farloom.aggregates.writer"
AGGREGATES_DEAD_EXCHANGE = "farloom.aggregates.dead"
AGGREGATES_DEAD_QUEUE = "farloom.aggregates.dead"

# Dead-letter headers. The code is low-cardinality (metrics, filtering); the
# reason is for people.
REASON_HEADER = "x-farloom-reason"
REASON_CODE_HEADER = "x-farloom-reason-code"
ELEMENT_INDEX_HEADER = "x-farloom-element-index"
SOURCE_QUEUE_HEADER = "x-farloom-source-queue"
# Set by Farloom's publishers so that workers can measure the latency from publish
# to durable; optional for other producers. Integer microseconds since the epoch:
# every AMQP client carries a 64-bit integer, while pika 1.x cannot send a float.
PUBLISHED_AT_HEADER = "x-farloom-published-at-us"


def client_properties(role: str) -> dict[str, str]:
    """Names a connection in RabbitMQ's management UI and ``rabbitmqctl list_connections``.

    An operator looking at a busy broker (or a test closing one program's
    connection) can tell Farloom's programs apart.
    """
    return {"connection_name": f"farloom {role} (pid {os.getpid()})"}


def broker_urls(amqp_url: str) -> list[str]:
    """The addresses in a (possibly comma-separated) broker URL, in the order they are tried."""
    urls = [url.strip() for url in amqp_url.split(",") if url.strip()]
    if not urls:
        raise BrokerUnavailable("RabbitMQ: no broker URL given")
    return urls


def connection_parameters(amqp_url: str, *, heartbeat: int = 30,
                          role: str = "client") -> list[pika.URLParameters]:
    """One pika parameter set per address in ``amqp_url``; pika tries them in turn."""
    found = []
    for url in broker_urls(amqp_url):
        params = pika.URLParameters(url)
        params.client_properties = client_properties(role)
        params.heartbeat = heartbeat
        params.blocked_connection_timeout = 300
        params.connection_attempts = 1
        params.socket_timeout = 5
        found.append(params)
    return found


def connect(amqp_url: str, *, heartbeat: int = 30, role: str = "client") -> BlockingConnection:
    """A connection to the first address of ``amqp_url`` that answers."""
    params = connection_parameters(amqp_url, heartbeat=heartbeat, role=role)
    with translated_errors():
        return pika.BlockingConnection(params)


@contextmanager
def translated_errors() -> Iterator[None]:
    try:
        yield
    except (AMQPConnectionError, ConnectionClosed, ChannelClosed, AMQPError, OSError) as exc:
        raise BrokerUnavailable(f"RabbitMQ: {exc!r}") from exc


def declare(channel: BlockingChannel, queue_type: QueueType) -> None:
    """Declare every exchange, queue and binding Farloom uses (idempotent).

    Raises QueueMismatch, naming every queue that exists with another type or
    other arguments (and leaving ``channel`` closed). Celery's ``farloom.tasks``
    is declared too, as Celery declares it (its binding is Celery's), so that
    its mismatch is found here, before a Celery worker fails on it.
    """
    differences: list[str] = []
    pairs = ((DEAD_EXCHANGE, DEAD_QUEUE, None), (CLICKS_EXCHANGE, INGEST_QUEUE, DEAD_EXCHANGE),
             (AGGREGATES_DEAD_EXCHANGE, AGGREGATES_DEAD_QUEUE, None),
             (AGGREGATES_EXCHANGE, AGGREGATES_QUEUE, AGGREGATES_DEAD_EXCHANGE))
    with translated_errors():
        connection = channel.connection
        for exchange, queue, dead_exchange in pairs:
            channel.exchange_declare(exchange=exchange, exchange_type="fanout", durable=True)
            found = declare_queue(connection, channel, queue, queue_type.arguments(dead_exchange))
            if found is not None:
                differences.append(found)
                channel = connection.channel()  # the 406 closed the old one
            channel.queue_bind(queue=queue, exchange=exchange)
        found = declare_queue(connection, channel, TASKS_QUEUE, queue_type.task_queue_arguments())
        if found is not None:
            differences.append(found)
    if differences:
        raise QueueMismatch(mismatch_message(differences, queue_type))


def queue_depth(channel: BlockingChannel, queue: str) -> int:
    with translated_errors():
        frame = channel.queue_declare(queue=queue, passive=True)
    return int(frame.method.message_count)


def ready_counts(connection: BlockingConnection, queues: Sequence[str]) -> dict[str, int]:
    """Messages ready in each of ``queues``, 0 for a queue not declared yet.

    Passive declares only: they work whatever type the queues have, so a status
    check neither needs FARLOOM_QUEUE_TYPE nor makes a queue of the wrong type.
    """
    counts: dict[str, int] = {}
    with translated_errors():
        channel = connection.channel()
        for queue in queues:
            try:
                counts[queue] = queue_depth(channel, queue)
            except BrokerUnavailable as exc:
                if not (isinstance(exc.__cause__, ChannelClosed)
                        and exc.__cause__.reply_code == NOT_FOUND):
                    raise
                counts[queue] = 0
                channel = connection.channel()  # the 404 closed the old one
    return counts


def published_at_stamp(now: float) -> int:
    """The PUBLISHED_AT_HEADER value for a publish at ``now`` (epoch seconds)."""
    return int(now * 1_000_000)


def published_at(headers: dict[str, Any] | None) -> float | None:
    """Epoch seconds from a message's PUBLISHED_AT_HEADER, or None if absent or malformed."""
    stamp = headers.get(PUBLISHED_AT_HEADER) if headers else None
    if isinstance(stamp, int) and not isinstance(stamp, bool) and stamp > 0:
        return stamp / 1_000_000
    return None


def dead_letter_headers(code: str, reason: str, element_index: int | None,
                        source_queue: str) -> dict[str, Any]:
    headers: dict[str, Any] = {
        REASON_CODE_HEADER: code,
        REASON_HEADER: reason,
        SOURCE_QUEUE_HEADER: source_queue,
    }
    if element_index is not None:
        headers[ELEMENT_INDEX_HEADER] = element_index
    return headers


# Why the broker itself dead-lettered a message (x-first-death-reason), for people.
_BROKER_REASONS = {
    "delivery_limit": "delivered more often than the delivery limit of {queue}",
    "rejected": "rejected without requeue by a consumer of {queue}",
    "expired": "expired in {queue}",
    "maxlen": "dropped from {queue} by its length limit",
}


def dead_letter_reason(headers: dict[str, Any] | None) -> tuple[str, str]:
    """(code, reason) of a dead letter, whoever dead-lettered it.

    Farloom's workers set REASON_CODE_HEADER and REASON_HEADER; a message the
    broker dead-lettered (a quorum queue's delivery limit, a reject) has only
    RabbitMQ's x-first-death-reason and x-first-death-queue.
    """
    headers = headers or {}
    code = headers.get(REASON_CODE_HEADER)
    if code is not None:
        return _text(code), _text(headers.get(REASON_HEADER, ""))
    broker_code = _text(headers.get("x-first-death-reason", "unknown"))
    queue = _text(headers.get("x-first-death-queue", "its queue"))
    reason = _BROKER_REASONS.get(broker_code, "dead-lettered by RabbitMQ ({code}) from {queue}")
    return broker_code, reason.format(queue=queue, code=broker_code)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


PERSISTENT = pika.DeliveryMode.Persistent
