"""Shard snapshots, ranking and part streaming against the real Redis (no Celery needed)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

from farloom_tasks.core import aggregates, topk
from farloom_tasks.core.clicks import Click
from farloom_tasks.core.increments import group_counts
from farloom_tasks.core.windows import MINUTE, last_due_minute
from farloom_tasks.pipeline.durable_write import drain_outbox
from farloom_tasks.pipeline.minute_aggregation import result_parts, snapshot_shard
from farloom_tasks.pipeline.replay import rebuild_from_raw
from farloom_tasks.stores import redis_counts
from tests.support.minute_checks import durable_writer, raw_counts, set_watermark
from tests.support.redis_cluster import on_single_redis_and_cluster
from tests.support.stack import Stack

pytestmark = on_single_redis_and_cluster

MINUTE_0 = 1_790_000_040 - 1_790_000_040 % MINUTE
SHARDS = 8


def _counts(stack: Stack) -> redis_counts.RedisCounts:
    return stack.counts()


def _load(counts: redis_counts.RedisCounts, per_ad: dict[str, int], batch: str) -> None:
    rows = [(ad, MINUTE_0, n) for ad, n in per_ad.items()]
    counts.apply_batch(batch, group_counts(rows, SHARDS))


def _redis_minute(counts: redis_counts.RedisCounts, minute: int) -> Counter[str]:
    found: Counter[str] = Counter()
    for shard in range(SHARDS):
        found.update(dict(counts.shard_counts(shard, minute)))
    return found


def test_each_shard_ranks_its_ties_at_the_boundary_in_code_point_order(stack: Stack) -> None:
    rng = random.Random(7)
    per_ad = {f"{rng.choice(['a', 'B', 'é', '9', 'ad-'])}{i}": rng.randint(1, 3)
              for i in range(400)}
    counts = _counts(stack)
    _load(counts, per_ad, "b1")

    for shard in range(SHARDS):
        mine = [(ad, n) for ad, n in per_ad.items()
                if (ad, n) in counts.shard_counts(shard, MINUTE_0)]
        summary = snapshot_shard(counts.client, minute=MINUTE_0, shard=shard, revision=1, k=5)
        assert list(summary.top) == topk.top_k(mine, 5)
        assert (summary.clicks, summary.distinct_ads) == (sum(n for _, n in mine), len(mine))


def test_every_ad_reaches_exactly_one_part_and_no_part_exceeds_a_chunk(stack: Stack) -> None:
    per_ad = {f"ad{i}": 1 + i % 4 for i in range(2500)}
    counts = _counts(stack)
    _load(counts, per_ad, "b1")
    summaries = [snapshot_shard(counts.client, minute=MINUTE_0, shard=s, revision=9, k=5)
                 for s in range(SHARDS)]

    parts = list(result_parts(counts.client, minute=MINUTE_0, revision=9, computed_at=1.0,
                              k=5, chunk_ads=300, shard_count=SHARDS, summaries=summaries))
    decoded = [aggregates.decode(aggregates.encode(p)) for p in parts]

    assert [p.part for p in decoded] == list(range(len(decoded)))
    assert {p.parts for p in decoded} == {len(decoded)} == {9}
    assert all(len(p.ads) <= 300 for p in decoded)
    streamed = [pair for p in decoded for pair in p.ads]
    assert len(streamed) == len(per_ad) and dict(streamed) == per_ad
    assert all(p.clicks == sum(per_ad.values()) and p.distinct_ads == 2500 for p in decoded)
    assert list(decoded[0].top) == topk.top_k(per_ad.items(), 5)


def test_a_snapshot_stays_put_while_clicks_keep_arriving(stack: Stack) -> None:
    counts = _counts(stack)
    _load(counts, {f"ad{i}": 2 for i in range(40)}, "b1")
    first = [snapshot_shard(counts.client, minute=MINUTE_0, shard=s, revision=3, k=5)
             for s in range(SHARDS)]
    _load(counts, {f"ad{i}": 5 for i in range(60)}, "b2")  # a late batch lands

    again = [snapshot_shard(counts.client, minute=MINUTE_0, shard=s, revision=3, k=5)
             for s in range(SHARDS)]
    parts = list(result_parts(counts.client, minute=MINUTE_0, revision=3, computed_at=1.0,
                              k=5, chunk_ads=1000, shard_count=SHARDS, summaries=again))

    assert again == first  # a retried shard task ranks what its first run froze
    assert dict(parts[0].ads) == {f"ad{i}": 2 for i in range(40)}


def test_a_rebuild_from_raw_while_clicks_keep_arriving_loses_and_doubles_nothing(
        stack: Stack) -> None:
    minute = last_due_minute(time.time(), 5.0) - MINUTE
    set_watermark(stack, minute)  # closed: the clicks below are late ones
    writer, raw = durable_writer(stack)
    counts = writer.counts
    stop = threading.Event()
    written: list[int] = []

    def ingest() -> None:
        batch = 0
        while not stop.is_set():
            clicks = [Click(f"w{batch}-{i}", f"ad{(batch + i) % 23}", minute + i % 60)
                      for i in range(40)]
            if batch % 3 == 0:
                raw.commit_batch(clicks)  # as if the worker died before Redis
            else:
                writer.write(clicks)
            batch += 1
            written.append(batch)

    thread = threading.Thread(target=ingest)
    thread.start()
    try:
        rebuild_store = durable_writer(stack)[1]
        for _ in range(6):
            rebuild_from_raw(stack.engine(), rebuild_store, counts, minute, SHARDS)
    finally:
        stop.set()
        thread.join(timeout=60)
    drain_outbox(raw, counts)

    expected = Counter({ad: n for (_, ad), n in raw_counts(stack, [minute]).items()})
    assert len(written) > 6 and sum(expected.values()) == 40 * len(written)
    assert _redis_minute(counts, minute) == expected
