"""Aggregating one minute: per-shard snapshots, the exact merge, the parts, the publish.

``snapshot_shard`` (the body of ``topk_shard``) copies one shard's sorted set
of the minute, together with its total, atomically (MULTI) into a snapshot key
private to this revision, and returns only what is small: the shard's top k,
its clicks and its distinct ads. ``merge_and_publish`` (the body of
``merge_minute``) merges those into the global top k and then streams every
ad of every snapshot from Redis in pages into aggregates parts of at most
``aggregate_chunk_ads`` ads, so no task result or message grows with the
number of ads. Because the snapshots are immutable, the totals, the top k
and the streamed ads of a revision always describe the same data, even while
late clicks keep arriving (those cause a later revision).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from farloom_tasks.core import aggregates, topk
from farloom_tasks.core.topk import AdCount
from farloom_tasks.stores.redis_counts import KEY_PREFIX, clicks_key, total_key, translated_errors

SNAPSHOT_KEY = KEY_PREFIX + ":{{shard-{shard}}}:snapshot:{minute}:{revision}"
SNAPSHOT_TOTAL_KEY = KEY_PREFIX + ":{{shard-{shard}}}:snapshot-total:{minute}:{revision}"
# A snapshot outlives any retry of its revision; merge deletes it when done.
SNAPSHOT_TTL_SECONDS = 3600
PAGE_ADS = 5000  # members read per ZRANGE call while streaming


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


def snapshot_key(shard: int, minute: int, revision: int) -> str:
    return SNAPSHOT_KEY.format(shard=shard, minute=minute, revision=revision)


def snapshot_total_key(shard: int, minute: int, revision: int) -> str:
    return SNAPSHOT_TOTAL_KEY.format(shard=shard, minute=minute, revision=revision)


def snapshot_shard(client: Any, *, minute: int, shard: int, revision: int,
                   k: int) -> ShardSummary:
    """Freeze one shard of ``minute`` for ``revision`` and rank it. Safe to repeat.

    The snapshot is taken once per revision: COPY without REPLACE leaves an
    existing snapshot alone, so a retried or duplicated shard task ranks the
    very data its first run froze, and merge_minute streams that same data.
    The set and its total are copied in one MULTI, so they always agree.
    """
    snap, snap_total = snapshot_key(shard, minute, revision), snapshot_total_key(
        shard, minute, revision)
    with translated_errors():
        pipe = client.pipeline(transaction=True)
        pipe.copy(clicks_key(shard, minute), snap)
        pipe.copy(total_key(shard, minute), snap_total)
        pipe.expire(snap, SNAPSHOT_TTL_SECONDS)
        pipe.expire(snap_total, SNAPSHOT_TTL_SECONDS)
        pipe.get(snap_total)
        pipe.zcard(snap)
        *_, total, distinct = pipe.execute()
        top = _ranked_head(client, snap, k)
    return ShardSummary(shard=shard, clicks=int(total or 0), distinct_ads=int(distinct),
                        top=tuple(top))


def _ranked_head(client: Any, key: str, k: int) -> list[AdCount]:
    """The exact top k of a sorted set, reading at most about 2k members.

    Redis breaks score ties by member bytes, ascending; UTF-8 byte order is
    code-point order, which is the contract's tie order. So: every member
    scoring above the k-th score, then the first of the k-th score's tie group.
    """
    head = client.zrevrange(key, 0, k - 1, withscores=True)
    if len(head) < k:
        return topk.top_k(_pairs(head), k)
    kth = int(head[-1][1])
    above = client.zrangebyscore(key, f"({kth}", "+inf", withscores=True)
    ties = client.zrangebyscore(key, kth, kth, start=0, num=k - len(above), withscores=True)
    return topk.top_k(_pairs(above) + _pairs(ties), k)


def _pairs(members: Sequence[tuple[bytes | str, float]]) -> list[AdCount]:
    return [(_text(ad), int(score)) for ad, score in members]


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


@dataclass(frozen=True, slots=True)
class MinuteResult:
    minute: int
    revision: int
    clicks: int
    distinct_ads: int
    parts: int
    top: tuple[AdCount, ...]


def merge(summaries: Sequence[ShardSummary], shard_count: int, k: int) -> tuple[
        list[AdCount], int, int]:
    """Global top k, clicks and distinct ads of a minute from its shard summaries. Pure."""
    shards = sorted(s.shard for s in summaries)
    if shards != list(range(shard_count)):
        raise IncompleteShards(f"expected shards 0..{shard_count - 1} once each, got {shards}")
    top = topk.merge_top_k([s.top for s in summaries], k)
    return top, sum(s.clicks for s in summaries), sum(s.distinct_ads for s in summaries)


def parts_needed(distinct_ads: int, chunk_ads: int) -> int:
    return max(1, -(-distinct_ads // chunk_ads))


def stream_ads(client: Any, minute: int, revision: int,
               summaries: Sequence[ShardSummary]) -> Iterator[AdCount]:
    """Every (ad, clicks) of every shard snapshot, page by page (no duplicates:
    index ranges over an immutable set, unlike ZSCAN)."""
    for summary in sorted(summaries, key=lambda s: s.shard):
        key = snapshot_key(summary.shard, minute, revision)
        for start in range(0, summary.distinct_ads, PAGE_ADS):
            with translated_errors():
                page = client.zrange(key, start, start + PAGE_ADS - 1, withscores=True)
            if len(page) != min(PAGE_ADS, summary.distinct_ads - start):
                raise IncompleteShards(f"snapshot {key} changed or expired while streaming")
            yield from _pairs(page)


def result_parts(client: Any, *, minute: int, revision: int, computed_at: float, k: int,
                 chunk_ads: int, shard_count: int,
                 summaries: Sequence[ShardSummary]) -> Iterator[aggregates.MinuteResultPart]:
    """The revision's aggregates messages, built one chunk at a time.

    The same fields ``aggregates.split_into_parts`` fills in, without holding
    every ad of the minute in memory at once.
    """
    top, clicks, distinct = merge(summaries, shard_count, k)
    parts = parts_needed(distinct, chunk_ads)
    chunk: list[AdCount] = []
    number = 0

    def part(ads: list[AdCount]) -> aggregates.MinuteResultPart:
        return aggregates.MinuteResultPart(
            minute=minute, revision=revision, part=number, parts=parts,
            computed_at=computed_at, clicks=clicks, distinct_ads=distinct, k=k,
            top=tuple(top), ads=tuple(ads))

    for pair in stream_ads(client, minute, revision, summaries):
        chunk.append(pair)
        if len(chunk) == chunk_ads:
            yield part(chunk)
            chunk, number = [], number + 1
    if chunk or number == 0:
        yield part(chunk)
        number += 1
    if number != parts:
        raise IncompleteShards(f"streamed {number} parts, announced {parts}")


def drop_snapshots(client: Any, minute: int, revision: int, shard_count: int) -> None:
    with translated_errors():
        pipe = client.pipeline(transaction=False)
        for shard in range(shard_count):
            pipe.delete(snapshot_key(shard, minute, revision),
                        snapshot_total_key(shard, minute, revision))
        pipe.execute()
