"""What a test sends to and reads from RabbitMQ directly, never through the workers."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from typing import Any

import pika

from farloom_tasks.stores import topology
from tests.support.stack import Stack, rabbitmqctl


def publish(stack: Stack, bodies: Sequence[bytes], *, exchange: str = topology.CLICKS_EXCHANGE,
            confirm: bool = True) -> None:
    """Publish persistent messages stamped with their publish time (confirmed by default).

    The stamp is integer microseconds: pika cannot encode a float header (kombu can).
    """
    connection = stack.amqp()
    try:
        channel = connection.channel()
        topology.declare(channel, topology.QueueType.of(stack.settings))
        if confirm:
            channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish(
                exchange, "", body,
                pika.BasicProperties(delivery_mode=topology.PERSISTENT, headers={
                    topology.PUBLISHED_AT_HEADER: topology.published_at_stamp(time.time())}))
    finally:
        connection.close()


def queue_counts(stack: Stack, queue: str = topology.INGEST_QUEUE) -> tuple[int, int]:
    """(ready, unacked) of a queue, from the management CLI."""
    listed = rabbitmqctl("list_queues", "-p", stack.vhost, "--no-table-headers",
                         "name", "messages_ready", "messages_unacknowledged")
    for line in listed.splitlines():
        parts = line.split()
        if parts and parts[0] == queue:
            return int(parts[1]), int(parts[2])
    raise AssertionError(f"queue {queue} not found in {listed!r}")


def close_vhost_connections(stack: Stack, reason: str = "farloom test: broker-side close") -> int:
    """Close every broker connection of the stack's vhost, as a broker-side loss would.

    Returns how many were listed; one that went away meanwhile is not an error.
    """
    # list_connections ignores -p: it lists the whole broker's connections, those of
    # other tests running side by side too. Only this stack's vhost's are closed.
    listed = rabbitmqctl("list_connections", "--no-table-headers", "pid", "vhost")
    pids = [fields[0] for fields in (line.split("\t") for line in listed.splitlines())
            if len(fields) == 2 and fields[0].startswith("<") and fields[1] == stack.vhost]
    for pid in pids:
        subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, reason],
                       capture_output=True, timeout=60, check=False)
    return len(pids)


def queue_depth(stack: Stack, queue: str) -> int:
    """Messages ready in ``queue`` (a passive declare: the queue must exist)."""
    connection = stack.amqp()
    try:
        return topology.queue_depth(connection.channel(), queue)
    finally:
        connection.close()


def dead_letters(stack: Stack, queue: str = topology.DEAD_QUEUE, *,
                 take: bool = False) -> list[tuple[bytes, dict[str, Any]]]:
    """Every message in a dead-letter queue (body, headers).

    Left in place (unacked, back to the queue when the connection closes) unless ``take``.
    """
    connection = stack.amqp()
    letters: list[tuple[bytes, dict[str, Any]]] = []
    try:
        channel = connection.channel()
        while True:
            method, properties, body = channel.basic_get(queue, auto_ack=take)
            if method is None:
                break
            letters.append((body, dict(properties.headers or {})))
    finally:
        connection.close()
    return letters
