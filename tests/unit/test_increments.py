"""Grouping new clicks into per-shard, per-minute increments, and their JSON round trip."""

from __future__ import annotations

import random
from collections import Counter

import orjson
from hypothesis import given
from hypothesis import strategies as st

from farloom_tasks.core import increments as inc
from farloom_tasks.core.shards import shard_of

ads = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6)
clicks = st.lists(st.tuples(ads, st.integers(min_value=0, max_value=1000).map(lambda m: m * 60)),
                  max_size=300)


def _one_row_per_click(new_clicks: list[tuple[str, int]]) -> list[tuple[str, int, int]]:
    return [(ad, minute, 1) for ad, minute in new_clicks]


def _grouped_click_by_click(new_clicks: list[tuple[str, int]], shard_count: int
                            ) -> inc.Increments:
    """The oracle: each click added on its own to its ad's shard and minute."""
    grouped: inc.Increments = {}
    for ad, minute in new_clicks:
        per_ad = grouped.setdefault(shard_of(ad, shard_count), {}).setdefault(minute, {})
        per_ad[ad] = per_ad.get(ad, 0) + 1
    return grouped


@given(clicks, st.integers(min_value=1, max_value=32))
def test_grouping_keeps_every_click_once_in_its_ads_shard(
        new_clicks: list[tuple[str, int]], shard_count: int) -> None:
    grouped = inc.group_counts(_one_row_per_click(new_clicks), shard_count)
    seen: Counter[tuple[str, int]] = Counter()
    for shard, minutes in grouped.items():
        for minute, per_ad in minutes.items():
            for ad, n in per_ad.items():
                assert shard_of(ad, shard_count) == shard
                assert n > 0
                seen[(ad, minute)] += n
    assert seen == Counter(new_clicks)


@given(clicks, st.integers(min_value=1, max_value=32))
def test_increments_survive_the_outbox_json_round_trip(
        new_clicks: list[tuple[str, int]], shard_count: int) -> None:
    grouped = inc.group_counts(_one_row_per_click(new_clicks), shard_count)
    stored = orjson.loads(orjson.dumps(inc.to_json(grouped)))  # what jsonb hands back
    assert inc.from_json(stored) == grouped


@given(clicks, st.integers(min_value=1, max_value=32))
def test_per_minute_totals_and_minutes_match_the_clicks(
        new_clicks: list[tuple[str, int]], shard_count: int) -> None:
    grouped = inc.group_counts(_one_row_per_click(new_clicks), shard_count)
    assert inc.clicks_per_minute(grouped) == dict(Counter(m for _, m in new_clicks))
    assert inc.minutes_of(grouped) == {m for _, m in new_clicks}


def test_a_small_batch_groups_as_expected() -> None:
    # "42" is on shard 0 and "ad-1" on shard 3 of 8 (pinned in test_shards).
    grouped = inc.group_counts(
        _one_row_per_click([("42", 60), ("ad-1", 60), ("42", 60), ("42", 120)]), 8)
    assert grouped == {0: {60: {"42": 2}, 120: {"42": 1}}, 3: {60: {"ad-1": 1}}}
    assert inc.to_json(grouped) == {"0": {"60": {"42": 2}, "120": {"42": 1}},
                                    "3": {"60": {"ad-1": 1}}}


def test_no_new_clicks_means_no_increments() -> None:
    assert inc.group_counts([], 8) == {}
    assert inc.clicks_per_minute({}) == {}
    assert inc.minutes_of({}) == set()


@given(clicks, st.integers(min_value=1, max_value=32), st.randoms(use_true_random=False))
def test_counted_rows_group_as_the_clicks_they_count(
        new_clicks: list[tuple[str, int]], shard_count: int, rng: random.Random) -> None:
    # PostgreSQL returns the new clicks counted per (ad, minute); split the counts
    # unevenly over repeated rows, as any grouping could, and the result must not change.
    rows: list[tuple[str, int, int]] = []
    for (ad, minute), n in Counter(new_clicks).items():
        while n:
            part = rng.randint(1, n)
            rows.append((ad, minute, part))
            n -= part
    rng.shuffle(rows)
    assert inc.group_counts(rows, shard_count) == _grouped_click_by_click(new_clicks, shard_count)


@given(st.dictionaries(ads, st.integers(min_value=1, max_value=1000), max_size=200),
       st.integers(min_value=1, max_value=32))
def test_a_minutes_ad_counts_split_into_one_page_per_shard(
        per_ad: dict[str, int], shard_count: int) -> None:
    pages = inc.by_shard(per_ad.items(), shard_count)
    assert len(pages) == shard_count
    assert all(shard_of(ad, shard_count) == shard
               for shard, page in enumerate(pages) for ad in page)
    assert {ad: n for page in pages for ad, n in page.items()} == per_ad
