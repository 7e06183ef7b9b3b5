"""The aggregates message codec (farloom_tasks.core.aggregates) and the writer's pure checks."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from farloom_tasks.core import aggregates
from farloom_tasks.core.aggregates import InvalidAggregate, MinuteResultPart
from farloom_tasks.core.topk import top_k
from farloom_tasks.stores.agg import (
    BOOK_LOCK_CLASS,
    ROWS_LOCK_CLASS,
    check_writable,
    minute_lock_key,
    ranked_top,
)

MINUTE = 1_796_000_040 - 1_796_000_040 % 60

ad_counts = st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda s: "\x00" not in s),
                            st.integers(min_value=1, max_value=10**12), max_size=60)


def _one(**changes: object) -> bytes:
    part = next(aggregates.split_into_parts(
        minute=MINUTE, revision=3, computed_at=MINUTE + 61.25, clicks=3, k=2,
        top=[("a", 2), ("b", 1)], ads=[("a", 2), ("b", 1)], chunk_ads=10))
    doc = orjson.loads(aggregates.encode(part))
    doc.update(changes)
    return orjson.dumps(doc)


@given(ad_counts, st.integers(min_value=1, max_value=25))
def test_the_parts_of_a_revision_carry_every_ad_exactly_once_and_decode_to_themselves(
        counts: dict[str, int], chunk_ads: int) -> None:
    ads = sorted(counts.items())
    parts = list(aggregates.split_into_parts(
        minute=MINUTE, revision=9, computed_at=MINUTE + 60.5, clicks=sum(counts.values()),
        k=5, top=top_k(ads, 5), ads=ads, chunk_ads=chunk_ads))

    assert [p.part for p in parts] == list(range(len(parts)))
    assert {p.parts for p in parts} == {len(parts)}
    assert [ad for p in parts for ad in p.ads] == ads
    assert all(len(p.ads) <= chunk_ads for p in parts)
    assert [aggregates.decode(aggregates.encode(p)) for p in parts] == parts


def test_a_minute_without_clicks_is_one_part_without_ads() -> None:
    parts = list(aggregates.split_into_parts(minute=MINUTE, revision=1, computed_at=MINUTE + 65,
                                             clicks=0, k=100, top=[], ads=[], chunk_ads=100))
    assert [(p.part, p.parts, p.ads, p.top) for p in parts] == [(0, 1, (), ())]


@pytest.mark.parametrize(("body", "reason"), [
    (b"{oops", "invalid JSON"),
    (b"[1, 2]", "JSON object"),
    (_one(type="something.else"), "expected type"),
    (_one(version=2), "expected type"),
    (_one(minute="yesterday"), "is not a time"),
    (_one(part=2, parts=2), "out of range"),
    (_one(parts=0), "out of range"),
    (_one(revision=True), "revision must be a int"),
    (_one(revision=-1), "non-negative"),
    (_one(clicks="3"), "clicks must be a int"),
    (_one(ads=[["a", 0]]), "positive clicks"),
    (_one(ads=[["a", 1, 2]]), "positive clicks"),
    (_one(top=[[7, 1]]), "positive clicks"),
    (_one(computed_at=12), "computed_at must be a str"),
])
def test_a_message_off_the_contract_is_rejected_with_its_reason(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidAggregate, match=reason):
        aggregates.decode(body)


@pytest.mark.parametrize(("changes", "reason"), [
    ({"ads": (("a", 1), ("a", 2))}, "twice"),
    ({"ads": (("a\x00", 1),)}, "NUL"),
    ({"top": (("", 1),)}, "empty"),
    ({"ads": (("a", 2**63),)}, "64 signed bits"),
    ({"revision": 2**63}, "64 signed bits"),
    ({"parts": 2**31}, "32 signed bits"),
    ({"ads": (("\ud800", 1),)}, "UTF-8"),
])
def test_a_part_postgresql_could_not_hold_is_refused_before_the_write(
        changes: dict[str, object], reason: str) -> None:
    part = aggregates.decode(_one())
    with pytest.raises(InvalidAggregate, match=reason):
        check_writable(MinuteResultPart(**{**_fields(part), **changes}))


def test_the_top_is_re_ranked_by_clicks_then_code_point_order_and_cut_at_k() -> None:
    part = MinuteResultPart(minute=MINUTE, revision=1, part=0, parts=1, computed_at=0.0,
                            clicks=0, distinct_ads=0, k=3,
                            top=(("b", 5), ("a", 5), ("B", 5), ("z", 9)), ads=())
    assert ranked_top(part) == [(1, "z", 9), (2, "B", 5), (3, "a", 5)]


def test_neighbouring_minutes_and_the_two_lock_kinds_take_different_locks() -> None:
    assert minute_lock_key(MINUTE) != minute_lock_key(MINUTE + 60)
    assert minute_lock_key(MINUTE, ROWS_LOCK_CLASS) != minute_lock_key(MINUTE, BOOK_LOCK_CLASS)
    assert all(0 <= key < 2**31 for key in minute_lock_key(253402300740))


def _fields(part: MinuteResultPart) -> dict[str, object]:
    return {name: getattr(part, name) for name in MinuteResultPart.__slots__}


def test_a_minute_that_is_not_the_start_of_a_minute_is_rejected() -> None:
    part = next(aggregates.split_into_parts(minute=1_764_424_980, revision=1, computed_at=1.0e9,
                                            clicks=0, k=100, top=(), ads=(), chunk_ads=10))
    document = orjson.loads(aggregates.encode(part))
    document["minute"] = "2025-11-29T14:03:30Z"
    with pytest.raises(InvalidAggregate, match="start of a minute"):
        aggregates.decode(orjson.dumps(document))
