"""The exact merge of a minute's shard summaries, and its parts. Pure.

Each shard task reports a ``ShardSummary`` (its exact top k, clicks and
distinct ads); ``merge`` turns those into the minute's global top k and
totals, refusing a set that does not cover every shard once, and
``build_parts`` cuts the streamed (ad, clicks) pairs into aggregates parts
of at most ``chunk_ads`` ads without holding the whole minute in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from farloom_tasks.core import aggregates, topk
from farloom_tasks.core.topk import AdCount


class IncompleteShards(RuntimeError):
    """The chord handed merge_minute a result set that does not cover every shard once."""


@dataclass(frozen=True, slots=True)
class ShardSummary:
    shard: int
    clicks: int
    distinct_ads: int
    top: tuple[AdCount, ...]

    def to_json(self) -> dict[str, Any]:
        return {"shard": self.shard, "clicks": self.clicks, "distinct_ads": self.distinct_ads,
                "top": [list(pair) for pair in self.top]}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ShardSummary:
        return cls(shard=int(doc["shard"]), clicks=int(doc["clicks"]),
                   distinct_ads=int(doc["distinct_ads"]),
                   top=tuple((str(ad), int(n)) for ad, n in doc["top"]))


def merge(summaries: Sequence[ShardSummary], shard_count: int, k: int) -> tuple[
        list[AdCount], int, int]:
    """Global top k, clicks and distinct ads of a minute from its shard summaries."""
    shards = sorted(s.shard for s in summaries)
    if shards != list(range(shard_count)):
        raise IncompleteShards(f"expected shards 0..{shard_count - 1} once each, got {shards}")
    top = topk.merge_top_k([s.top for s in summaries], k)
    return top, sum(s.clicks for s in summaries), sum(s.distinct_ads for s in summaries)


def parts_needed(distinct_ads: int, chunk_ads: int) -> int:
    return max(1, -(-distinct_ads // chunk_ads))


def build_parts(ads: Iterable[AdCount], *, minute: int, revision: int, computed_at: float,
                k: int, chunk_ads: int, shard_count: int,
                summaries: Sequence[ShardSummary]) -> Iterator[aggregates.MinuteResultPart]:
    """The revision's aggregates messages from every (ad, clicks) of the minute, in order.

    The same fields ``aggregates.split_into_parts`` fills in, built one chunk at
    a time as ``ads`` is consumed; raises IncompleteShards when ``ads`` did not
    fill exactly the parts the summaries announce.
    """
    top, clicks, distinct = merge(summaries, shard_count, k)
    parts = parts_needed(distinct, chunk_ads)
    chunk: list[AdCount] = []
    number = 0

    def part(chunk_of_ads: list[AdCount]) -> aggregates.MinuteResultPart:
        return aggregates.MinuteResultPart(
            minute=minute, revision=revision, part=number, parts=parts,
            computed_at=computed_at, clicks=clicks, distinct_ads=distinct, k=k,
            top=tuple(top), ads=tuple(chunk_of_ads))

    for pair in ads:
        chunk.append(pair)
        if len(chunk) == chunk_ads:
            yield part(chunk)
            chunk, number = [], number + 1
    if chunk or number == 0:
        yield part(chunk)
        number += 1
    if number != parts:
        raise IncompleteShards(f"streamed {number} parts, announced {parts}")
