"""Exact top-k and the merge of shard rankings (docs/design.md, "Windows, ranking and shards")."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from farloom_tasks.core.shards import shard_of
from farloom_tasks.core.topk import merge_top_k, top_k

ad_ids = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)
# Few distinct click counts so that ties are common, which is where merges go wrong.
counts = st.dictionaries(ad_ids, st.integers(min_value=1, max_value=5), max_size=200)


def _reference(counts: dict[str, int], k: int) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:k]


def _per_shard_top_k(counts: dict[str, int], shard_count: int,
                     k: int) -> list[list[tuple[str, int]]]:
    shards: list[dict[str, int]] = [{} for _ in range(shard_count)]
    for ad, n in counts.items():
        shards[shard_of(ad, shard_count)][ad] = n
    return [top_k(shard.items(), k) for shard in shards]


@given(counts, st.integers(min_value=1, max_value=64), st.integers(min_value=0, max_value=250))
def test_merging_shard_rankings_equals_the_top_k_of_all_ads(
        counts: dict[str, int], shard_count: int, k: int) -> None:
    merged = merge_top_k(_per_shard_top_k(counts, shard_count, k), k)
    assert merged == _reference(counts, k)


@given(st.lists(st.sampled_from(["a", "b", "c", "d", "B", "é", "ab", "a b"]), max_size=300),
       st.integers(min_value=1, max_value=10), st.integers(min_value=1, max_value=10))
def test_merging_clicks_from_a_stream_equals_counting_the_whole_multiset(
        stream: list[str], shard_count: int, k: int) -> None:
    whole = Counter(stream)
    per_shard: list[Counter[str]] = [Counter() for _ in range(shard_count)]
    for ad in stream:
        per_shard[shard_of(ad, shard_count)][ad] += 1
    merged = merge_top_k([top_k(c.items(), k) for c in per_shard], k)
    assert merged == _reference(dict(whole), k)
    assert sum(n for _, n in merged) == sum(n for _, n in _reference(dict(whole), k))


def test_ties_break_by_ad_id_in_code_point_order() -> None:
    tied = [("b", 3), ("a", 3), ("B", 3), ("é", 3), ("z", 3), ("aa", 3), ("top", 9)]
    # Code points: 'B' (66) < 'a' (97) < 'aa' < 'b' < 'z' < 'é' (233); no locale folding.
    assert top_k(tied, 10) == [("top", 9), ("B", 3), ("a", 3), ("aa", 3), ("b", 3),
                               ("z", 3), ("é", 3)]


def test_astral_characters_sort_after_the_basic_plane_as_in_utf8_byte_order() -> None:
    # UTF-16 ordering would put U+1F600 before U+FF5E; code point (= UTF-8 byte) order does not.
    assert top_k([("\U0001F600", 1), ("\uFF5E", 1)], 2) == [("\uFF5E", 1), ("\U0001F600", 1)]


def test_k_larger_than_the_ads_returns_every_ad_ranked() -> None:
    assert top_k([("x", 1), ("y", 2)], 100) == [("y", 2), ("x", 1)]


def test_k_zero_returns_nothing() -> None:
    assert top_k([("x", 1)], 0) == []
    assert merge_top_k([[("x", 1)]], 0) == []


def test_merge_normalises_redis_shaped_rankings() -> None:
    # Redis hands back scores as floats; the merged ranking carries ints.
    merged = merge_top_k([[("a", 2.0)], [("b", 5.0)]], 2)  # type: ignore[list-item]
    assert merged == [("b", 5), ("a", 2)]
    assert all(type(n) is int for _, n in merged)


def test_merging_no_shards_gives_an_empty_ranking() -> None:
    assert merge_top_k([], 100) == []
