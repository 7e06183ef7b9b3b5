"""Revision snapshots of a minute's shard sets in Redis (adapter).

A snapshot is a copy of one shard's sorted set of a minute, and of its total,
private to one revision (``snapshot_key``): it never changes after it is
taken, so everything read from it describes the same data while late clicks
keep landing on the live set. A snapshot outlives any retry of its revision;
the merge deletes it when done, and its TTL removes one a crash left behind.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from farloom_tasks.core import topk
from farloom_tasks.core.minute_merge import IncompleteShards
from farloom_tasks.core.topk import AdCount
from farloom_tasks.stores.redis_counts import KEY_PREFIX, clicks_key, total_key, translated_errors

SNAPSHOT_KEY = KEY_PREFIX + ":{{shard-{shard}}}:snapshot:{minute}:{revision}"
SNAPSHOT_TOTAL_KEY = KEY_PREFIX + ":{{shard-{shard}}}:snapshot-total:{minute}:{revision}"
SNAPSHOT_TTL_SECONDS = 3600
PAGE_ADS = 5000  # members read per ZRANGE call while streaming


def snapshot_key(shard: int, minute: int, revision: int) -> str:
    return SNAPSHOT_KEY.format(shard=shard, minute=minute, revision=revision)


def snapshot_total_key(shard: int, minute: int, revision: int) -> str:
    return SNAPSHOT_TOTAL_KEY.format(shard=shard, minute=minute, revision=revision)


def freeze(client: Any, *, minute: int, shard: int, revision: int,
           k: int) -> tuple[int, int, list[AdCount]]:
    """Snapshot one shard of ``minute`` for ``revision``: (clicks, distinct ads, top k).

    COPY without REPLACE leaves an existing snapshot alone, so a repeated call
    ranks the very data the first one froze. The set and its total are copied
    in one MULTI, so they always agree.
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
    return int(total or 0), int(distinct), top


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


def stream(client: Any, minute: int, revision: int,
           shards: Sequence[tuple[int, int]]) -> Iterator[AdCount]:
    """Every (ad, clicks) of the snapshots of ``shards`` ((shard, distinct ads), in order),
    page by page (no duplicates: index ranges over an immutable set, unlike ZSCAN).

    Raises IncompleteShards if a snapshot holds fewer members than its summary said.
    """
    for shard, distinct_ads in shards:
        key = snapshot_key(shard, minute, revision)
        for start in range(0, distinct_ads, PAGE_ADS):
            with translated_errors():
                page = client.zrange(key, start, start + PAGE_ADS - 1, withscores=True)
            if len(page) != min(PAGE_ADS, distinct_ads - start):
                raise IncompleteShards(f"snapshot {key} changed or expired while streaming")
            yield from _pairs(page)


def drop(client: Any, minute: int, revision: int, shard_count: int) -> None:
    with translated_errors():
        pipe = client.pipeline(transaction=False)
        for shard in range(shard_count):
            # One key per DEL: a cluster pipeline refuses a DEL of several keys.
            pipe.delete(snapshot_key(shard, minute, revision))
            pipe.delete(snapshot_total_key(shard, minute, revision))
        pipe.execute()


def _pairs(members: Sequence[tuple[bytes | str, float]]) -> list[AdCount]:
    return [(_text(ad), int(score)) for ad, score in members]


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
