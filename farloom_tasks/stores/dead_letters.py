"""Publishing dead letters with publisher confirms (adapter), for every consumer.

One publisher for both dead-letter exchanges: the ingest worker's invalid
clicks go to ``farloom.clicks.dead`` (the default exchange), the aggregated
writer's garbage to ``farloom.aggregates.dead``. Each letter is a persistent
message carrying the rejected body unchanged and its reason in the headers
(``topology.dead_letter_headers``: code, reason, element index, source queue).

Ack rule: a consumer acks a message only after ``publish`` (or
``publish_one``) has returned for its dead letters, i.e. the broker confirmed
each one (persistent, routed to a queue). A dead letter whose message is
redelivered before its ack (a crash, a lost connection) is published again:
dead letters are at least once. Every copy of an ingest dead letter carries the
same AMQP ``message_id`` (core.message_identity.dead_letter_message_id, from
its source message's identity and element index), so a consumer can drop the
repeats; the exact count is the rejected-click ledger (raw.rejected_clicks).
"""

from __future__ import annotations

from collections.abc import Sequence

import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

from farloom_tasks.core.message_identity import dead_letter_message_id
from farloom_tasks.core.messages import DeadLetter
from farloom_tasks.stores import topology

MAX_REASON_CHARS = 1000  # headers are for people; an unbounded reason is itself garbage
JSON = "application/json"


class DeadLetterPublisher:
    """Owns a confirm-mode channel on the consumer's connection.

    ``source_queue`` is named in every letter's headers; ``exchange`` is where
    the letters go (``farloom.clicks.dead`` unless told otherwise).
    """

    def __init__(self, connection: BlockingConnection, source_queue: str,
                 exchange: str = topology.DEAD_EXCHANGE) -> None:
        self.source_queue = source_queue
        self.exchange = exchange
        with topology.translated_errors():
            self.channel: BlockingChannel = connection.channel()
            self.channel.confirm_delivery()

    def publish(self, letters: Sequence[DeadLetter]) -> None:
        """Publish each letter and wait for its confirm; BrokerUnavailable if any fails."""
        for letter in letters:
            message_id = (dead_letter_message_id(letter.source_id, letter.element_index)
                          if letter.source_id else None)
            self.publish_one(letter.body, letter.rejection.code, letter.rejection.detail,
                             element_index=letter.element_index, message_id=message_id)

    def publish_one(self, body: bytes, code: str, reason: str, *,
                    element_index: int | None = None, content_type: str | None = JSON,
                    message_id: str | None = None) -> None:
        """Publish ``body`` with its reason and wait for the confirm; BrokerUnavailable if not.

        ``mandatory`` turns a letter that reaches no queue into an error instead
        of a silent drop. ``reason`` is cut to ``MAX_REASON_CHARS``.
        """
        headers = topology.dead_letter_headers(
            code, reason[:MAX_REASON_CHARS], element_index, self.source_queue)
        with topology.translated_errors():
            self.channel.basic_publish(
                exchange=self.exchange, routing_key="", body=body,
                properties=pika.BasicProperties(
                    delivery_mode=topology.PERSISTENT, headers=headers,
                    content_type=content_type, message_id=message_id),
                mandatory=True)
