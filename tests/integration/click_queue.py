"""Reading back what the log watcher published: the ingest queue of a test stack."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from farloom_tasks.core.messages import DecodedMessage, decode_message
from farloom_tasks.stores import topology
from tests.support.stack import Stack

# pika would otherwise decode the float publish-time header cast to int (pika/pika#599).


@dataclass
class Delivered:
    body: bytes
    properties: Any

    def decoded(self) -> DecodedMessage:
        return decode_message(self.body, now=time.time(), max_skew=300.0, max_bytes=1 << 24)


def drain(stack: Stack, *, until: Callable[[list[Delivered]], bool] | None = None,
          timeout: float = 60.0) -> list[Delivered]:
    """Consume (and ack) the ingest queue until it is empty, or ``until`` holds.

    Without ``until`` it returns once the queue stays empty for a second; with
    it, it keeps waiting for more messages up to ``timeout`` seconds.
    """
    got: list[Delivered] = []
    deadline = time.monotonic() + timeout
    connection = stack.amqp()
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=2000)
        for method, properties, body in channel.consume(
                topology.INGEST_QUEUE, auto_ack=True, inactivity_timeout=1.0):
            if method is not None:
                got.append(Delivered(body, properties))
                continue
            if until is None or until(got):
                break
            assert time.monotonic() < deadline, (
                f"gave up after {timeout} s with {len(got)} messages")
        channel.cancel()
    finally:
        connection.close()
    return got


def click_ids(delivered: list[Delivered]) -> list[str]:
    """Every valid click's id, in delivery order (duplicates kept)."""
    return [click.click_id for message in delivered for click in message.decoded().clicks]
