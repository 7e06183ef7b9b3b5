"""The Redis side of ``farloom bench slice-options``: slices counted at ingest, read at close.

What ingest would pay per batch, with dimensions off (``RedisCounts.apply_batch``,
as today) and on: the batch grouped by shard and minute, its outbox document
(``raw.redis_outbox``, inserted in the batch's transaction) and one EVALSHA per
shard of the production apply script (stores/redis_counts.py), unchanged. With
dimensions on, the same call per shard also carries, as further (set, total)
pairs, one sorted set per (minute, slice, value) and shard
(``farloom:{shard-N}:slice:<slice>:<value>:<minute>``) and the shard's registry
of values (``farloom:{shard-N}:slice-values:<minute>``, member ``slice\\x1fvalue``,
score its clicks), so the marker that makes a batch count once covers the
slices too. Batches are of ``FARLOOM_BATCH_SIZE`` clicks, i.e. 20 messages of 100.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from farloom_tasks.bench.slice_workload import SlicedMinute
from farloom_tasks.core.increments import group_counts, to_json
from farloom_tasks.core.shards import shard_of
from farloom_tasks.stores import redis_counts
from farloom_tasks.stores.redis_client import RedisClient

SLICE_KEY = "farloom:{{shard-{shard}}}:slice:{slice}:{value}:{minute}"
SLICE_TOTAL_KEY = "farloom:{{shard-{shard}}}:slice-total:{slice}:{value}:{minute}"
VALUES_KEY = "farloom:{{shard-{shard}}}:slice-values:{minute}"
VALUES_TOTAL_KEY = "farloom:{{shard-{shard}}}:slice-values-total:{minute}"
MEMBER_SEPARATOR = "\x1f"

# {shard: {(slice, value): {ad_id: clicks}}}
SliceIncrements = dict[int, dict[tuple[str, str], dict[str, int]]]


@dataclass
class IngestCost:
    """Seconds spent over every batch of the minute, by step, and what was written."""

    group: float = 0.0  # grouping the batch's clicks (Python)
    outbox: float = 0.0  # the outbox INSERT (its commit is the batch's own, not counted)
    redis: float = 0.0  # the apply script's pipeline
    outbox_bytes: int = 0  # JSON bytes of every outbox document
    batches: int = 0

    @property
    def seconds(self) -> float:
        return self.group + self.outbox + self.redis


def slice_increments(minute: SlicedMinute, batch: Iterable[tuple[str, str, str]],
                     shard_count: int) -> SliceIncrements:
    grouped: SliceIncrements = {}
    names = minute.slice_names
    for ad, country, device in batch:
        per_value = grouped.setdefault(shard_of(ad, shard_count), {})
        for name in names:
            ads = per_value.setdefault((name, minute.value_of(name, ad, country, device)), {})
            ads[ad] = ads.get(ad, 0) + 1
    return grouped


def _calls(batch_id: str, m: int, ads: dict[int, dict[int, dict[str, int]]],
           slices: SliceIncrements, ttl: int) -> list[list[Any]]:
    calls: list[list[Any]] = []
    for shard, minutes in ads.items():
        keys = [redis_counts.applied_key(shard, batch_id), redis_counts.clicks_key(shard, m),
                redis_counts.total_key(shard, m)]
        args: list[Any] = [ttl, len(minutes[m]), *_flat(minutes[m].items())]
        values = slices.get(shard, {})
        for (name, value), counts in values.items():
            keys += [SLICE_KEY.format(shard=shard, slice=name, value=value, minute=m),
                     SLICE_TOTAL_KEY.format(shard=shard, slice=name, value=value, minute=m)]
            args += [len(counts), *_flat(counts.items())]
        if values:
            keys += [VALUES_KEY.format(shard=shard, minute=m),
                     VALUES_TOTAL_KEY.format(shard=shard, minute=m)]
            args += [len(values), *_flat((name + MEMBER_SEPARATOR + value, sum(c.values()))
                                          for (name, value), c in values.items())]
        calls.append(["EVALSHA", redis_counts._APPLY_SHA, len(keys), *keys, *args])
    return calls


def _flat(pairs: Iterable[tuple[str, int]]) -> list[Any]:
    return [item for pair in pairs for item in pair]


def ingest_minute(minute: SlicedMinute, client: RedisClient, conn: Any, shard_count: int,
                  batch_size: int, ttl: int, with_slices: bool) -> IngestCost:
    """Apply the whole minute batch by batch, as ingest would; returns its cost."""
    client.script_load(redis_counts._APPLY_SCRIPT)  # the production script, loaded untimed
    m = minute.workload.minute
    at = datetime.fromtimestamp(m, UTC)
    cost = IngestCost()
    with conn.cursor() as cursor:
        for start in range(0, len(minute.clicks), batch_size):
            batch = minute.clicks[start:start + batch_size]
            began = time.perf_counter()
            ads = group_counts(((ad, m, 1) for ad, _, _ in batch), shard_count)
            slices = slice_increments(minute, batch, shard_count) if with_slices else {}
            document: dict[str, Any] = {"ads": to_json(ads)}
            if with_slices:
                document["slices"] = {str(shard): {f"{n}{MEMBER_SEPARATOR}{v}": c
                                                   for (n, v), c in values.items()}
                                      for shard, values in slices.items()}
            body = orjson.dumps(document)
            grouped = time.perf_counter()
            batch_id = str(uuid.uuid4())
            cursor.execute("INSERT INTO raw.redis_outbox (batch_id, increments, min_minute, "
                           "max_minute) VALUES (%s, %s, %s, %s)", (batch_id, body.decode(), at, at))
            written = time.perf_counter()
            pipe: Any = client.pipeline(transaction=False)
            for call in _calls(batch_id, m, ads, slices, ttl):
                pipe.execute_command(*call)
            pipe.execute()
            applied = time.perf_counter()
            conn.commit()
            cost.group += grouped - began
            cost.outbox += written - grouped
            cost.redis += applied - written
            cost.outbox_bytes += len(body)
            cost.batches += 1
        cursor.execute("TRUNCATE raw.redis_outbox")
    conn.commit()
    return cost


def read_slices(client: RedisClient, m: int,
                shard_count: int) -> dict[tuple[str, str], dict[str, int]]:
    """At close: every (slice, value) of the minute, {ad_id: clicks}, from every shard.

    An ad lives in one shard, so a value's shards hold disjoint ads: the union is exact.
    """
    merged: dict[tuple[str, str], dict[str, int]] = {}
    for shard in range(shard_count):
        members: Any = client.zrange(VALUES_KEY.format(shard=shard, minute=m), 0, -1)
        pairs = [_text(member).split(MEMBER_SEPARATOR, 1) for member in members]
        pipe: Any = client.pipeline(transaction=False)
        for name, value in pairs:
            pipe.zrange(SLICE_KEY.format(shard=shard, slice=name, value=value, minute=m), 0, -1,
                        withscores=True)
        for (name, value), counts in zip(pairs, pipe.execute(), strict=True):
            merged.setdefault((name, value), {}).update(
                (_text(ad), int(score)) for ad, score in counts)
    return merged


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
