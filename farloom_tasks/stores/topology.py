"""RabbitMQ names and topology (docs/design.md, "RabbitMQ topology"), declared idempotently.

Every program that touches a queue declares the whole topology first with the
same arguments, so start-up order never matters.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import AMQPConnectionError, AMQPError, ChannelClosed, ConnectionClosed

from farloom_tasks.errors import BrokerUnavailable

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


def connect(amqp_url: str, *, heartbeat: int = 30, role: str = "client") -> BlockingConnection:
    params = pika.URLParameters(amqp_url)
    params.client_properties = client_properties(role)
    params.heartbeat = heartbeat
    params.blocked_connection_timeout = 300
    params.connection_attempts = 1
    params.socket_timeout = 5
    with translated_errors():
        return pika.BlockingConnection(params)


@contextmanager
def translated_errors() -> Iterator[None]:
    try:
        yield
    except (AMQPConnectionError, ConnectionClosed, ChannelClosed, AMQPError, OSError) as exc:
        raise BrokerUnavailable(f"RabbitMQ: {exc!r}") from exc


def declare(channel: BlockingChannel) -> None:
    """Declare every exchange, queue and binding Farloom uses (idempotent)."""
    with translated_errors():
        _pair(channel, DEAD_EXCHANGE, DEAD_QUEUE, None)
        _pair(channel, CLICKS_EXCHANGE, INGEST_QUEUE, DEAD_EXCHANGE)
        _pair(channel, AGGREGATES_DEAD_EXCHANGE, AGGREGATES_DEAD_QUEUE, None)
        _pair(channel, AGGREGATES_EXCHANGE, AGGREGATES_QUEUE, AGGREGATES_DEAD_EXCHANGE)


def _pair(channel: BlockingChannel, exchange: str, queue: str, dead_exchange: str | None) -> None:
    channel.exchange_declare(exchange=exchange, exchange_type="fanout", durable=True)
    arguments: dict[str, Any] = {}
    if dead_exchange is not None:
        # Messages the broker itself rejects (basic.reject without requeue) also
        # land in the dead-letter queue rather than vanishing.
        arguments["x-dead-letter-exchange"] = dead_exchange
    channel.queue_declare(queue=queue, durable=True, arguments=arguments)
    channel.queue_bind(queue=queue, exchange=exchange)


def queue_depth(channel: BlockingChannel, queue: str) -> int:
    with translated_errors():
        frame = channel.queue_declare(queue=queue, passive=True)
    return int(frame.method.message_count)


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


PERSISTENT = pika.DeliveryMode.Persistent
