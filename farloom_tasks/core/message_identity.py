"""The identity of a click message, and of each dead letter made from it. Pure.

The rejected-click ledger (raw.rejected_clicks, migration 0008) keys a rejected
element by (source message identity, element index), so the identity must be
the same on every delivery of one message and differ between two messages:

- ``amqp:<message_id>`` when the publisher set the AMQP ``message_id``
  property. Farloom's publishers set one per message, kept when an
  unconfirmed message is republished, so a republish is the same message too.
- Otherwise ``sha256:<hex>`` of the message's ``timestamp`` property, its
  ``x-farloom-published-at-us`` header and its body. These are what a publisher
  gives a message; the broker changes none of them on redelivery (the headers
  it adds, ``x-delivery-count`` on quorum queues or ``x-death``, are left out).
  The honest consequence: two publishes of the same bytes with neither a
  message_id nor a timestamp nor the header are one message, and their
  rejected elements one set of rows. A publisher that sends identical bodies
  on purpose should set a message_id.

A dead letter's ``message_id`` is derived from the identity and the index, so
every copy at-least-once delivery publishes carries the same one and a consumer
of ``farloom.clicks.dead`` can drop the repeats.
"""

from __future__ import annotations

import hashlib

WHOLE_MESSAGE = -1  # the ledger's element index for a message not split into an array
MAX_MESSAGE_ID_CHARS = 200  # AMQP shortstr holds 255 bytes; longer ids are hashed


def source_identity(message_id: str | None, timestamp: int | None,
                    published_at_header: object, body: bytes) -> str:
    """The identity of one click message (see the module docstring).

    ``published_at_header`` is the header's value as received, None if absent.
    """
    if message_id:
        if len(message_id) <= MAX_MESSAGE_ID_CHARS:
            return f"amqp:{message_id}"
        return "amqp-sha256:" + hashlib.sha256(message_id.encode("utf-8")).hexdigest()
    digest = hashlib.sha256()
    # Each part is length-prefixed so that no two different triples hash alike.
    for part in (_optional(timestamp), _optional(published_at_header), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return "sha256:" + digest.hexdigest()


def click_identity(click_id: str, clicked_at: float) -> str:
    """The identity of a valid click PostgreSQL refused, whatever message carried it.

    A click refused after validation ("unstorable", "beyond_retention") has left
    its message behind in the batch's deduplication; like the click itself, it
    is known by its click id and event time (docs/design.md, "The dedup window").
    """
    key = f"{click_id}\n{clicked_at!r}".encode("utf-8", "backslashreplace")
    return "click-sha256:" + hashlib.sha256(key).hexdigest()


def ledger_index(element_index: int | None) -> int:
    """The ledger's index for a dead letter's element index (None: the whole message)."""
    return WHOLE_MESSAGE if element_index is None else element_index


def dead_letter_message_id(source_id: str, element_index: int | None) -> str:
    """The AMQP message_id of the dead letter of ``source_id``'s element ``element_index``."""
    key = f"{source_id}\n{ledger_index(element_index)}".encode()
    return "farloom-dead:" + hashlib.sha256(key).hexdigest()


def _optional(value: object) -> bytes:
    return b"" if value is None else repr(value).encode("utf-8", "backslashreplace")
