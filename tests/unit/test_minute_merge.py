"""The pure parts of minute aggregation: merging shard summaries and counting parts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from farloom_tasks.core import topk
from farloom_tasks.core.minute_merge import (
    IncompleteShards,
    ShardSummary,
    merge,
    parts_needed,
)
from farloom_tasks.core.shards import shard_of

K = 5


def _summaries(counts: dict[str, int], shard_count: int) -> list[ShardSummary]:
    by_shard: dict[int, list[tuple[str, int]]] = {s: [] for s in range(shard_count)}
    for ad, n in counts.items():
        by_shard[shard_of(ad, shard_count)].append((ad, n))
    return [ShardSummary(shard=s, clicks=sum(n for _, n in ads), distinct_ads=len(ads),
                         top=tuple(topk.top_k(ads, K))) for s, ads in by_shard.items()]


@given(st.dictionaries(st.text(min_size=1, max_size=4), st.integers(1, 6), max_size=60),
       st.integers(1, 8))
def test_merging_shard_summaries_gives_the_exact_global_ranking_and_totals(
        counts: dict[str, int], shard_count: int) -> None:
    top, clicks, distinct = merge(_summaries(counts, shard_count), shard_count, K)
    assert top == topk.top_k(counts.items(), K)
    assert (clicks, distinct) == (sum(counts.values()), len(counts))


def test_a_missing_shard_is_refused_rather_than_published_short() -> None:
    summaries = _summaries({"a": 1, "b": 2, "c": 3}, 4)
    with pytest.raises(IncompleteShards):
        merge(summaries[1:], 4, K)


def test_a_shard_reported_twice_is_refused() -> None:
    summaries = _summaries({"a": 1}, 2)
    with pytest.raises(IncompleteShards):
        merge([*summaries, summaries[0]], 2, K)


@pytest.mark.parametrize(("ads", "chunk", "parts"), [(0, 7, 1), (1, 7, 1), (7, 7, 1),
                                                     (8, 7, 2), (20_001, 20_000, 2)])
def test_a_revision_has_one_part_per_chunk_and_at_least_one(ads: int, chunk: int,
                                                            parts: int) -> None:
    assert parts_needed(ads, chunk) == parts


def test_a_shard_summary_survives_the_json_round_trip() -> None:
    summary = ShardSummary(shard=3, clicks=12, distinct_ads=4, top=(("é", 5), ("a", 3)))
    assert ShardSummary.from_json(summary.to_json()) == summary
