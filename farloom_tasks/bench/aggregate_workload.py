"""``farloom bench aggregate``'s workload: one minute of Zipf clicks, loaded as ingest leaves it.

The minute holds ``--clicks`` clicks over exactly ``--ads`` ads (each ad at least
once, the rest Zipf). ``load`` puts it where the ingest path would have: the
clicks in ``raw.ad_clicks`` (COPY) and the per-shard Redis sorted sets and
totals (pipelined), so the pipeline can close the minute as it would any other.
"""

from __future__ import annotations

import io
import random
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tqdm import tqdm

from farloom_tasks.bench.env import BenchEnv
from farloom_tasks.core.shards import shard_of
from farloom_tasks.core.topk import AdCount
from farloom_tasks.errors import BenchFailed
from farloom_tasks.stores import db, partitions, redis_client, redis_counts, redis_epochs

COPY_ROWS = 50_000  # rows per COPY chunk
REDIS_BATCH = 10_000  # members per pipelined ZADD batch


@dataclass(frozen=True)
class Workload:
    minute: int
    counts: dict[str, int]  # ad_id -> clicks

    @property
    def clicks(self) -> int:
        return sum(self.counts.values())


def zipf_counts(clicks: int, ads: int, exponent: float) -> list[int]:
    """Clicks per ad rank: one each, the rest in proportion to 1/rank**exponent. Pure."""
    if not 1 <= ads <= clicks:
        raise BenchFailed(f"need 1 <= --ads ({ads}) <= --clicks ({clicks})")
    weights = [1.0 / rank**exponent for rank in range(1, ads + 1)]
    rest, total = clicks - ads, sum(weights)
    counts = [1 + int(rest * w / total) for w in weights]
    for rank in range(clicks - sum(counts)):  # the rounding remainder goes to the head
        counts[rank % ads] += 1
    return counts


def make_workload(minute: int, clicks: int, ads: int, exponent: float, seed: int) -> Workload:
    names = [f"ad-{n:07d}" for n in random.Random(seed).sample(range(10 * ads), ads)]
    return Workload(minute, dict(zip(names, zipf_counts(clicks, ads, exponent), strict=True)))


def _click_rows(workload: Workload, seed: int) -> Iterator[str]:
    """COPY text rows (click_id, ad_id, clicked_at, minute), clicks spread over the minute."""
    ad_of_click = [ad for ad, n in workload.counts.items() for _ in range(n)]
    random.Random(seed).shuffle(ad_of_click)
    start = datetime.fromtimestamp(workload.minute, UTC)
    minute_text = start.strftime("%Y-%m-%d %H:%M:%S+00")
    total = len(ad_of_click)
    for j, ad in enumerate(ad_of_click):
        millis = j * 60_000 // total
        stamp = f"{start.strftime('%Y-%m-%d %H:%M')}:{millis // 1000:02d}.{millis % 1000:03d}+00"
        yield f"bench-{j}\t{ad}\t{stamp}\t{minute_text}\n"


def copy_raw(env: BenchEnv, minutes: Sequence[int], columns: Sequence[str],
             rows: Iterator[str], total: int) -> None:
    """COPY ``rows`` (COPY text lines of ``columns``) into ``raw.ad_clicks``, then ANALYZE.

    The raw and per-minute partitions of every minute in ``minutes`` are made first,
    as ingest and the closer would have made them. The one loader of the benchmarks
    that put clicks straight into raw (``bench aggregate``, ``bench slice-options``).
    """
    settings = env.settings
    engine = db.make_engine(settings.database_url, pool_size=1)
    try:
        with db.translated_errors():
            conn: Any = engine.raw_connection()
        try:
            with tqdm(total=total, desc="load raw.ad_clicks", unit="click",
                      file=sys.stderr) as bar, db.translated_errors(), conn.cursor() as cursor:
                for minute in minutes:
                    partitions.ensure(cursor, partitions.RAW, minute,
                                      partitions.length_seconds_of(settings.raw_partition_hours))
                    partitions.ensure(cursor, partitions.MINUTES, minute, partitions.
                                      length_seconds_of(settings.minute_partition_hours))
                conn.commit()
                statement = f"COPY raw.ad_clicks ({', '.join(columns)}) FROM STDIN"
                while chunk := [row for _, row in zip(range(COPY_ROWS), rows, strict=False)]:
                    cursor.copy_expert(statement, io.StringIO("".join(chunk)))
                    bar.update(len(chunk))
                conn.commit()
                cursor.execute("ANALYZE raw.ad_clicks")
                conn.commit()
        finally:
            conn.close()
    finally:
        engine.dispose()


def load(env: BenchEnv, workload: Workload, seed: int) -> None:
    """COPY the clicks into raw and build the per-shard sorted sets and totals."""
    copy_raw(env, [workload.minute], ("click_id", "ad_id", "clicked_at", "minute"),
             _click_rows(workload, seed), workload.clicks)
    load_redis(env, workload)


def load_redis(env: BenchEnv, workload: Workload) -> None:
    """The per-shard sorted sets and totals of ``workload``, as ingest leaves them."""
    settings = env.settings
    client = redis_client.connect(settings)
    redis_epochs.ensure_epochs(client, settings.shard_count, time.time())
    by_shard: dict[int, list[AdCount]] = {}
    for ad, n in workload.counts.items():
        by_shard.setdefault(shard_of(ad, settings.shard_count), []).append((ad, n))
    with redis_counts.translated_errors(), tqdm(
            total=len(workload.counts), desc="load Redis sorted sets", unit="ad",
            file=sys.stderr) as bar:
        for shard, pairs in by_shard.items():
            key = redis_counts.clicks_key(shard, workload.minute)
            pipe = client.pipeline(transaction=False)
            for i in range(0, len(pairs), REDIS_BATCH):
                pipe.zadd(key, dict(pairs[i:i + REDIS_BATCH]))
                bar.update(len(pairs[i:i + REDIS_BATCH]))
            total = redis_counts.total_key(shard, workload.minute)
            pipe.set(total, sum(n for _, n in pairs))
            pipe.expire(key, settings.redis_retention_seconds)
            pipe.expire(total, settings.redis_retention_seconds)
            pipe.execute()
