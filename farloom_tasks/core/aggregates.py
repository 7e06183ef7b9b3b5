"""The aggregates message (``farloom.aggregates``): one minute's result, in parts. Pure.

One aggregation of a minute is one *revision*. Its per-ad counts are split into
``parts`` messages of at most ``aggregate_chunk_ads`` ads each, so no message
is huge however many ads a minute holds. Every part repeats the minute's
totals and its top k (small), so the writer can finalise the revision on
whichever part arrives last.

Body (UTF-8 JSON)::

    {"type": "farloom.minute_result", "version": 1,
     "minute": "2026-11-29T14:03:00Z", "revision": 42,
     "part": 0, "parts": 3, "computed_at": "2026-11-29T14:04:05.120Z",
     "clicks": 123456, "distinct_ads": 40123, "k": 100,
     "top": [["ad-7", 900], ["ad-3", 850], ...],
     "ads": [["ad-7", 900], ["ad-9", 12], ...]}
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from farloom_tasks.core.topk import AdCount
from farloom_tasks.core.windows import MINUTE, iso, parse_instant

MESSAGE_TYPE = "farloom.minute_result"
MESSAGE_VERSION = 1


class InvalidAggregate(ValueError):
    """An aggregates message that breaks the contract; it is dead-lettered."""


@dataclass(frozen=True, slots=True)
class MinuteResultPart:
    minute: int  # epoch seconds, minute-aligned
    revision: int
    part: int  # 0 .. parts-1
    parts: int
    computed_at: float  # epoch seconds
    clicks: int
    distinct_ads: int
    k: int
    top: tuple[AdCount, ...]
    ads: tuple[AdCount, ...]


def split_into_parts(*, minute: int, revision: int, computed_at: float, clicks: int,
                     k: int, top: Sequence[AdCount], ads: Sequence[AdCount],
                     chunk_ads: int) -> Iterator[MinuteResultPart]:
    """The messages of one revision. A minute with no clicks is one part with no ads."""
    parts = max(1, -(-len(ads) // chunk_ads))
    for part in range(parts):
        yield MinuteResultPart(
            minute=minute, revision=revision, part=part, parts=parts,
            computed_at=computed_at, clicks=clicks, distinct_ads=len(ads), k=k,
            top=tuple(top), ads=tuple(ads[part * chunk_ads:(part + 1) * chunk_ads]),
        )


def encode(part: MinuteResultPart) -> bytes:
    return orjson.dumps({
        "type": MESSAGE_TYPE,
        "version": MESSAGE_VERSION,
        "minute": iso(part.minute),
        "revision": part.revision,
        "part": part.part,
        "parts": part.parts,
        "computed_at": datetime.fromtimestamp(part.computed_at, UTC)
        .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "clicks": part.clicks,
        "distinct_ads": part.distinct_ads,
        "k": part.k,
        "top": part.top,
        "ads": part.ads,
    })


def decode(body: bytes) -> MinuteResultPart:
    """Parse and check one message; raises InvalidAggregate with the reason."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidAggregate(f"invalid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidAggregate("the message must be a JSON object")
    if doc.get("type") != MESSAGE_TYPE or doc.get("version") != MESSAGE_VERSION:
        raise InvalidAggregate(f"expected type {MESSAGE_TYPE} version {MESSAGE_VERSION}")
    try:
        minute_start = parse_instant(_text(doc, "minute"))
        computed_at = datetime.fromisoformat(
            _text(doc, "computed_at").replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise InvalidAggregate(str(exc)) from None
    if minute_start % MINUTE:
        raise InvalidAggregate("minute is not the start of a minute")
    minute = int(minute_start)
    revision = _count(doc, "revision")
    part, parts = _count(doc, "part"), _count(doc, "parts")
    if parts < 1 or part >= parts:
        raise InvalidAggregate(f"part {part} of {parts} is out of range")
    return MinuteResultPart(
        minute=minute, revision=revision, part=part, parts=parts, computed_at=computed_at,
        clicks=_count(doc, "clicks"), distinct_ads=_count(doc, "distinct_ads"),
        k=_count(doc, "k"), top=_ad_counts(doc, "top"), ads=_ad_counts(doc, "ads"),
    )


def _field(doc: dict[str, object], name: str, kind: type) -> object:
    value = doc.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidAggregate(f"{name} must be a {kind.__name__}")
    return value


def _text(doc: dict[str, object], name: str) -> str:
    value = _field(doc, name, str)
    assert isinstance(value, str)
    return value


def _count(doc: dict[str, object], name: str) -> int:
    value = _field(doc, name, int)
    assert isinstance(value, int)
    if value < 0:
        raise InvalidAggregate(f"{name} must be non-negative")
    return value


def _ad_counts(doc: dict[str, object], name: str) -> tuple[AdCount, ...]:
    value = _field(doc, name, list)
    assert isinstance(value, list)
    pairs: list[AdCount] = []
    for item in value:
        if (not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str)
                or not isinstance(item[1], int) or isinstance(item[1], bool) or item[1] < 1):
            raise InvalidAggregate(f"{name} must hold [ad_id, positive clicks] pairs")
        pairs.append((item[0], item[1]))
    return tuple(pairs)
