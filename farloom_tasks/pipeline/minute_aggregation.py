"""Aggregating one minute: per-shard snapshots, the exact merge, the parts, the publish.

``snapshot_shard`` (the body of ``topk_shard``) copies one shard's sorted set
of the minute, together with its total, atomically (MULTI) into a snapshot key
private to this revision (``stores/redis_snapshots.py``), and returns only
what is small: the shard's top k, its clicks and its distinct ads.
``result_parts`` (used by ``merge_minute``) merges those into the global top k
(``core/minute_merge.py``) and then streams every ad of every snapshot from
Redis in pages into aggregates parts of at most ``aggregate_chunk_ads`` ads,
so no task result or message grows with the number of ads. Because the
snapshots are immutable, the totals, the top k and the streamed ads of a
revision always describe the same data, even while late clicks keep arriving
(those cause a later revision).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from farloom_tasks.core import aggregates
from farloom_tasks.core.minute_merge import ShardSummary, build_parts
from farloom_tasks.stores import redis_snapshots


def snapshot_shard(client: Any, *, minute: int, shard: int, revision: int,
                   k: int) -> ShardSummary:
    """Freeze one shard of ``minute`` for ``revision`` and rank it. Safe to repeat.

    The snapshot is taken once per revision, so a retried or duplicated shard
    task ranks the very data its first run froze, and merge_minute streams
    that same data.
    """
    clicks, distinct, top = redis_snapshots.freeze(client, minute=minute, shard=shard,
                                                   revision=revision, k=k)
    return ShardSummary(shard=shard, clicks=clicks, distinct_ads=distinct, top=tuple(top))


def result_parts(client: Any, *, minute: int, revision: int, computed_at: float, k: int,
                 chunk_ads: int, shard_count: int,
                 summaries: Sequence[ShardSummary]) -> Iterator[aggregates.MinuteResultPart]:
    """The revision's aggregates messages, built one chunk at a time from the snapshots."""
    shards = [(s.shard, s.distinct_ads) for s in sorted(summaries, key=lambda s: s.shard)]
    return build_parts(redis_snapshots.stream(client, minute, revision, shards),
                       minute=minute, revision=revision, computed_at=computed_at, k=k,
                       chunk_ads=chunk_ads, shard_count=shard_count, summaries=summaries)


def drop_snapshots(client: Any, minute: int, revision: int, shard_count: int) -> None:
    redis_snapshots.drop(client, minute, revision, shard_count)
