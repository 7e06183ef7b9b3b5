"""Publishing invalid clicks to ``farloom.clicks.dead`` with publisher confirms (adapter).

Ack rule: the worker acks a message only after ``publish`` has returned for
its dead letters, i.e. the broker confirmed each one (persistent, routed to a
queue). A dead letter whose message is redelivered before its ack (a crash, a
lost connection) is published again: dead letters are at least once.
"""

from __future__ import annotations

from collections.abc import Sequence

import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from farloom_tasks.core.messages import DeadLetter
from farloom_tasks.stores import topology

MAX_REASON_CHARS = 1000  # headers are for people; an unbounded reason is itself garbage


class DeadLetterPublisher:
    """Owns a confirm-mode channel on the worker's connection."""

    def __init__(self, connection: BlockingConnection, source_queue: str) -> None:
        self.source_queue = source_queue
        with topology.translated_errors():
            self.channel: BlockingChannel = connection.channel()
            self.channel.confirm_delivery()

    def publish(self, letters: Sequence[DeadLetter]) -> None:
        """Publish each letter and wait for its confirm; BrokerUnavailable if any fails.

        ``mandatory`` turns a letter that reaches no queue into an error instead
        of a silent drop.
        """
        with topology.translated_errors():
            for letter in letters:
                headers = topology.dead_letter_headers(
                    letter.rejection.code, letter.rejection.detail[:MAX_REASON_CHARS],
                    letter.element_index, self.source_queue)
                self.channel.basic_publish(
                    exchange=topology.DEAD_EXCHANGE, routing_key="", body=letter.body,
                    properties=pika.BasicProperties(
                        delivery_mode=topology.PERSISTENT, headers=headers,
                        content_type="application/json"),
                    mandatory=True)
