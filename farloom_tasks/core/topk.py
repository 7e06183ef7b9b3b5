"""Exact top-k ranking and the merge of per-shard rankings. Pure.

Order: clicks descending, then ``ad_id`` ascending in code-point order. Python
compares ``str`` by code point, which is what PostgreSQL does under
``COLLATE "C"`` for UTF-8 text, so both sides rank ties identically.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

AdCount = tuple[str, int]


def _rank_key(item: AdCount) -> tuple[int, str]:
    return (-item[1], item[0])


def top_k(counts: Iterable[AdCount], k: int) -> list[AdCount]:
    """The k best (ad_id, clicks) pairs, best first. O(n log k)."""
    return heapq.nsmallest(k, counts, key=_rank_key)


def merge_top_k(shard_rankings: Iterable[Sequence[AdCount]], k: int) -> list[AdCount]:
    """Merge per-shard top-k lists into the global top k.

    Exact only because shards partition the ads: no ad is split across two
    lists, so the global k best are among the union of each shard's k best.
    """
    merged: list[AdCount] = []
    for ranking in shard_rankings:
        merged.extend((str(ad), int(clicks)) for ad, clicks in ranking)
    return top_k(merged, k)
