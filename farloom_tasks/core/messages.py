"""Decoding a click message body into valid clicks and dead letters. Pure.

A body is UTF-8 JSON: one click object, or an array of them. A body that is
too large, not UTF-8 or not JSON is dead-lettered whole; inside an array each
element stands on its own, so one bad element never costs its siblings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from farloom_tasks.core.clicks import Click, Rejection, validate_click


@dataclass(frozen=True, slots=True)
class DeadLetter:
    body: bytes  # the offending element re-encoded as JSON, or the whole raw body
    rejection: Rejection
    element_index: int | None = None  # position in the batch; None for the whole message
    # The source message's identity (core.message_identity), set by the consumer that
    # received it: the rejected-click ledger's key and the dead letter's message_id.
    source_id: str = ""


@dataclass(slots=True)
class DecodedMessage:
    clicks: list[Click] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


def decode_message(body: bytes, *, now: float, max_skew: float, max_bytes: int,
                   earliest: float = float("-inf")) -> DecodedMessage:
    """Split one message body into valid clicks and per-element dead letters.

    ``earliest``: the oldest event time raw retention accepts (clicks.validate_click).
    """
    decoded = DecodedMessage()
    if len(body) > max_bytes:
        # Not parsed at all: a hostile multi-megabyte body must not cost CPU or memory.
        decoded.dead_letters.append(
            DeadLetter(body, Rejection("oversized", f"message has {len(body)} bytes; "
                                       f"the limit is {max_bytes}"))
        )
        return decoded
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        decoded.dead_letters.append(DeadLetter(body, _undecodable(body, exc)))
        return decoded

    if isinstance(payload, list):
        for index, element in enumerate(payload):
            _add(decoded, element, now, max_skew, earliest, index)
    else:
        _add(decoded, payload, now, max_skew, earliest, None)
    return decoded


def _add(decoded: DecodedMessage, element: object, now: float, max_skew: float,
         earliest: float, index: int | None) -> None:
    try:
        result: Click | Rejection = validate_click(element, now, max_skew, earliest)
    except Exception as exc:  # a validation bug, not bad input
        # Crashing would redeliver this message forever and stall every valid click
        # behind it; dead-lettered, the element is kept for a replay once fixed.
        result = Rejection("validation_error", f"the validator failed on this element: "
                                               f"{exc!r}"[:200])
    if isinstance(result, Click):
        decoded.clicks.append(result)
    else:
        decoded.dead_letters.append(DeadLetter(orjson.dumps(element), result, index))


def _undecodable(body: bytes, exc: orjson.JSONDecodeError) -> Rejection:
    # Told apart only on this error path, so valid messages never pay for a second decode.
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as bad:
        return Rejection("not_utf8", f"body is not UTF-8: {bad.reason} at byte {bad.start}")
    return Rejection("invalid_json", str(exc)[:200])


def encode_clicks(clicks: list[dict[str, object]]) -> bytes:
    """Encode click dicts as one message body (an object for one, an array otherwise)."""
    return orjson.dumps(clicks[0] if len(clicks) == 1 else clicks)
