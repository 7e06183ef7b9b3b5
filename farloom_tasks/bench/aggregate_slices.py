"""``farloom bench aggregate``'s sliced minute: traffic with every field, its catalog and truth.

The minute is ``bench slice-options``' (``slice_workload.make_sliced_minute``: the
aggregate workload's Zipf counts, each click with a country out of 50 and a device
out of 5, each ad with a campaign and an advertiser). Here it is loaded as ingest
leaves it: every click with a random UUIDv4 click id and every optional field
(``user_id``, ``ip``, ``country``, ``device``, ``campaign_id``, ``advertiser_id``),
its ads in the catalog ``agg.ads``, and the per-shard Redis sets. The same clicks
can be loaded into several minutes (other click ids), so one run closes a minute
without slice work and one with.

``expected`` counts every slice of the real pipeline (``stores/slices.slice_names``:
the configured slices, then ``campaign`` and ``advertiser``) in Python, and
``check`` raises unless ``agg.slice_values`` and ``agg.slice_minutes`` hold exactly
that, ranked as §2.5 ranks. ``load_history`` fills earlier minutes by SQL, to see
how the slice close grows with stored data.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from psycopg2.extras import execute_values

from farloom_tasks.bench.aggregate_workload import Workload, copy_raw, load_redis
from farloom_tasks.bench.env import BenchEnv
from farloom_tasks.bench.slice_workload import COUNTRIES, DEVICES, SlicedMinute
from farloom_tasks.core.dimensions import COMBINATION_SEPARATOR, Slice
from farloom_tasks.core.topk import top_k
from farloom_tasks.core.traffic import USERS, random_ipv4
from farloom_tasks.core.windows import MINUTE, iso
from farloom_tasks.errors import BenchFailed
from farloom_tasks.pipeline import slice_aggregation
from farloom_tasks.stores import db, partitions
from farloom_tasks.stores import slices as slice_store

RAW_COLUMNS = ("click_id", "ad_id", "clicked_at", "minute", "user_id", "ip", "country",
               "device", "campaign_id", "advertiser_id")
CATALOG_BATCH = 10_000  # agg.ads rows per INSERT


@dataclass(frozen=True)
class SliceTruth:
    """Every slice of the minute, counted in Python: (slice, value) -> {ad_id: clicks}."""

    names: tuple[str, ...]  # every slice the pipeline makes, stores/slices.slice_names order
    per_value: dict[tuple[str, str], dict[str, int]]

    @property
    def values(self) -> int:
        return len(self.per_value)

    @property
    def ad_counts(self) -> int:
        return sum(len(ads) for ads in self.per_value.values())


def _value(slice_: Slice, country: str, device: str) -> str:
    fields = {"country": country, "device": device}
    return COMBINATION_SEPARATOR.join(fields[d] for d in slice_.dimensions)


def expected(minute: SlicedMinute) -> SliceTruth:
    counted: Counter[tuple[str, str, str]] = Counter()
    for slice_ in minute.slices:
        counted.update((slice_.name, _value(slice_, country, device), ad)
                       for ad, country, device in minute.clicks)
    for ad, n in minute.workload.counts.items():
        counted[(slice_store.CAMPAIGN, minute.campaign_of[ad], ad)] += n
        counted[(slice_store.ADVERTISER, minute.advertiser_of[ad], ad)] += n
    per_value: dict[tuple[str, str], dict[str, int]] = {}
    for (name, value, ad), n in counted.items():
        per_value.setdefault((name, value), {})[ad] = n
    return SliceTruth(tuple(slice_store.slice_names(minute.slices)), per_value)


def _rows(minute: SlicedMinute, at: int, seed: int) -> Iterator[str]:
    """COPY rows of every click, dated in minute ``at``: UUIDv4 ids, every optional field."""
    rng = random.Random(seed)
    start = datetime.fromtimestamp(at, UTC)
    minute_text = start.strftime("%Y-%m-%d %H:%M:%S+00")
    prefix = start.strftime("%Y-%m-%d %H:%M")
    total = len(minute.clicks)
    for j, (ad, country, device) in enumerate(minute.clicks):
        millis = j * 60_000 // total
        click_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        yield (f"{click_id}\t{ad}\t{prefix}:{millis // 1000:02d}.{millis % 1000:03d}+00\t"
               f"{minute_text}\tuser-{rng.randrange(USERS)}\t{random_ipv4(rng)}\t{country}\t"
               f"{device}\t{minute.campaign_of[ad]}\t{minute.advertiser_of[ad]}\n")


def load(env: BenchEnv, minute: SlicedMinute, minutes: Sequence[int], seed: int) -> None:
    """The clicks into raw once per minute of ``minutes`` (other click ids each time),
    their ads into the catalog and the Redis sets of each minute."""
    catalog = [(ad, minute.campaign_of[ad], minute.advertiser_of[ad])
               for ad in sorted(minute.workload.counts)]
    engine = db.make_engine(env.settings.database_url, pool_size=1)
    try:
        with db.translated_errors():
            conn: Any = engine.raw_connection()
        try:
            with db.translated_errors(), conn.cursor() as cursor:
                execute_values(cursor, "INSERT INTO agg.ads (ad_id, campaign_id, advertiser_id) "
                               "VALUES %s", catalog, page_size=CATALOG_BATCH)
            conn.commit()
        finally:
            conn.close()
    finally:
        engine.dispose()
    for n, at in enumerate(minutes):
        copy_raw(env, [at], RAW_COLUMNS, _rows(minute, at, seed + n), len(minute.clicks))
        load_redis(env, Workload(at, minute.workload.counts))


def check(engine: sa.Engine, truth: SliceTruth, m: int, revision: int) -> None:
    """Raise unless the minute's slices are exactly ``truth``, ranked, at ``revision``."""
    with db.translated_errors(), engine.connect() as conn:
        stored = conn.execute(sa.text(
            "SELECT slice, value, clicks, distinct_ads, ad_ids, ad_clicks, revision "
            "FROM agg.slice_values WHERE minute = to_timestamp(:m)"), {"m": m}).all()
        minutes: dict[str, int] = dict(conn.execute(sa.text(
            "SELECT slice, revision FROM agg.slice_minutes WHERE minute = to_timestamp(:m)"),
            {"m": m}).all())
    problems: list[str] = []
    got: dict[tuple[str, str], dict[str, int]] = {}
    for name, value, clicks, distinct, ads, ad_clicks, row_revision in stored:
        ranked = list(zip(ads, (int(c) for c in ad_clicks), strict=True))
        if ranked != top_k(ranked, len(ranked)):
            problems.append(f"the arrays of {name}={value} are not ranked")
        if clicks != sum(c for _, c in ranked) or distinct != len(ranked):
            problems.append(f"the totals of {name}={value} differ from its arrays")
        if row_revision != revision:
            problems.append(f"{name}={value} is at revision {row_revision}, not {revision}")
        got[(name, value)] = dict(ranked)
    if got != truth.per_value:
        differing = set(got) ^ set(truth.per_value) | {
            key for key in set(got) & set(truth.per_value) if got[key] != truth.per_value[key]}
        problems.append(f"{len(differing)} (slice, value) pairs differ from the clicks")
    if minutes != dict.fromkeys(truth.names, revision):
        problems.append(f"agg.slice_minutes holds {minutes}")
    if problems:
        raise BenchFailed(f"the slices of {iso(m)} are not exact: " + "; ".join(problems[:5]))


def hold_off_slices(engine: sa.Engine, names: Sequence[str], m: int) -> None:
    """Mark ``m``'s slices as computed at a revision no close reaches, so its
    ``aggregate_slices`` task finds nothing stale and writes nothing: the baseline."""
    with db.translated_errors(), engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO agg.slice_minutes (minute, slice, revision, clicks) "
            "SELECT to_timestamp(:m), n, :r, 0 FROM unnest(CAST(:names AS text[])) AS n"),
            {"m": m, "r": 2**62, "names": list(names)})


def history_sql() -> str:
    """Raw clicks of the minutes [%(first)s, %(last)s] (epoch s), %(per)s each, over the
    catalog's ads (uniform), countries and devices of the workload, every field set."""
    return """
        INSERT INTO raw.ad_clicks (click_id, ad_id, clicked_at, minute, user_id, ip, country,
                                   device, campaign_id, advertiser_id)
        SELECT gen_random_uuid()::text, a.ad_id, g.m + make_interval(secs => g.i %% 60), g.m,
               'user-' || g.i, '10.0.0.1', g.country, g.device, a.campaign_id,
               a.advertiser_id
        FROM (SELECT m, i,
                     (%(ads)s::text[])[1 + (i * 7919) %% %(n)s] AS ad_id,
                     (%(countries)s::text[])[1 + (i * 7 + extract(minute FROM m)::int) %% 50]
                         AS country,
                     (%(devices)s::text[])[1 + (i * 3) %% 5] AS device
              FROM generate_series(to_timestamp(%(first)s), to_timestamp(%(last)s),
                                   interval '1 minute') AS m,
                   generate_series(1, %(per)s) AS i) AS g
        JOIN agg.ads a ON a.ad_id = g.ad_id
    """


def load_history(env: BenchEnv, slices: Sequence[Slice], before: int, minutes: int,
                 per_minute: int, ads: Sequence[str]) -> None:
    """``minutes`` closed minutes before ``before``, ``per_minute`` clicks each: raw rows,
    their per-ad counts in agg and their slices (the real slice statement, per minute)."""
    settings = env.settings
    first, last = before - minutes * MINUTE, before - MINUTE
    engine = db.make_engine(settings.database_url, pool_size=1)
    try:
        with db.translated_errors():
            conn: Any = engine.raw_connection()
        try:
            with db.translated_errors(), conn.cursor() as cursor:
                for at in range(first, last + 1, MINUTE):
                    partitions.ensure(cursor, partitions.RAW, at,
                                      partitions.length_seconds_of(settings.raw_partition_hours))
                    partitions.ensure(cursor, partitions.MINUTES, at, partitions.
                                      length_seconds_of(settings.minute_partition_hours))
                conn.commit()
                # An hour at a time: one statement over hours of minutes holds too much.
                for hour_first in range(first, last + 1, 60 * MINUTE):
                    cursor.execute(history_sql(), {
                        "first": hour_first, "last": min(last, hour_first + 59 * MINUTE),
                        "per": per_minute, "countries": list(COUNTRIES),
                        "devices": list(DEVICES), "ads": list(ads), "n": len(ads)})
                    conn.commit()
                cursor.execute("""
                    INSERT INTO agg.ad_clicks_per_minute (minute, ad_id, clicks, revision)
                    SELECT minute, ad_id, count(*), 1 FROM raw.ad_clicks
                    WHERE minute BETWEEN to_timestamp(%(f)s) AND to_timestamp(%(l)s)
                    GROUP BY minute, ad_id
                """, {"f": first, "l": last})
                conn.commit()
                cursor.execute("ANALYZE raw.ad_clicks")
                cursor.execute("ANALYZE agg.ad_clicks_per_minute")
                conn.commit()
        finally:
            conn.close()
        for at in range(first, last + 1, MINUTE):
            slice_aggregation.aggregate(
                engine, slices, minute=at, revision=1,
                partition_hours=settings.minute_partition_hours,
                work_mem_mb=settings.slice_work_mem_mb)
    finally:
        engine.dispose()
