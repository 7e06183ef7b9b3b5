"""``farloom bench scale``'s older raw clicks: loaded with SQL, measured on disk, one dropped.

The rows never go through the pipeline: each hour partition is made by
``raw.ensure_partition`` (so its shape is the product's), its unique index on
click_id is set aside while ``INSERT ... SELECT`` from ``generate_series`` fills
it and then built from its definition as the function made it, and it is
vacuumed and analyzed, as autovacuum would have done long ago in a live install
(and would otherwise do in the middle of the timed runs). Hours load side by
side, one connection each.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg2.errors
from tqdm import tqdm

from farloom_tasks.bench.env import BenchEnv
from farloom_tasks.bench.scale_plan import LoadedHour, chunks
from farloom_tasks.core.partitions import HOUR
from farloom_tasks.core.traffic import ADS_PER_CAMPAIGN, CAMPAIGNS_PER_ADVERTISER, DEVICE_SHARES
from farloom_tasks.errors import BenchFailed
from farloom_tasks.pipeline import retention
from farloom_tasks.stores import db, partitions

LOADERS = 2  # hours loaded at once, one connection (one server process) each
# The index build of a large partition sorts its click ids; a larger sort memory keeps
# more of that sort in memory.
INDEX_BUILD_MEMORY = "1GB"

# Row g of an hour of `rows` clicks: spread evenly over the hour, a random UUIDv4 id,
# an ad out of 10,000 drawn log-uniformly (about Zipf with s = 1, as bench/traffic.py),
# a user out of 1,000,000, a public unicast IPv4 address (1.0.0.0-223.255.255.255), a
# country out of bench/traffic.py's twenty, a device in core.traffic's shares, and the
# ad's campaign and advertiser as core.traffic.owner_of derives them.
_INSERT_SQL = """
    INSERT INTO {table} (click_id, ad_id, clicked_at, minute, user_id, ip, country,
                         device, campaign_id, advertiser_id)
    SELECT gen_random_uuid()::text, 'ad-' || ad,
           at, date_trunc('minute', at, 'UTC'),
           'user-' || floor(random() * 1000000)::int,
           '0.0.0.0'::inet + (16777216 + floor(random() * 3741319168))::bigint,
           (%(countries)s::text[])[1 + floor(random() * %(country_count)s)::int],
           (%(devices)s::text[])[1 + floor(random() * %(device_count)s)::int],
           'camp-' || ad / %(ads_per_campaign)s,
           'adv-' || ad / (%(ads_per_campaign)s * %(campaigns_per_advertiser)s)
    FROM (SELECT to_timestamp(%(start)s + (g + random()) * %(step)s) AS at,
                 floor(exp(random() * ln(10000)))::int - 1 AS ad
          FROM generate_series(%(first)s, %(last)s) AS g) AS spread
"""
# One entry per percent of clicks, so that a uniform draw follows the shares.
_DEVICES_BY_SHARE = [device for device, share in DEVICE_SHARES for _ in range(share)]
_DEDUP_INDEX_SQL = """
    SELECT indexdef FROM pg_indexes
    WHERE schemaname = %(schema)s AND tablename = %(table)s
      AND indexname = %(table)s || '_dedup_key'
"""


@dataclass(frozen=True)
class Loaded:
    partitions: list[str]  # 'raw.ad_clicks_p...', oldest first
    rows: dict[str, int]  # partition -> rows loaded
    seconds: float


@dataclass(frozen=True)
class Size:
    total: int  # bytes: heap, TOAST and indexes
    heap: int  # heap and TOAST
    indexes: int


@contextlib.contextmanager
def _connection(env: BenchEnv, *, autocommit: bool = False) -> Iterator[Any]:
    engine = db.make_engine(env.settings.database_url, pool_size=1)
    try:
        with db.translated_errors():
            conn: Any = engine.raw_connection()
        try:
            conn.driver_connection.autocommit = autocommit
            yield conn
        finally:
            conn.close()
    finally:
        engine.dispose()


def load(env: BenchEnv, plan: Sequence[LoadedHour], countries: Sequence[str]) -> Loaded:
    """Load every planned hour (progress on stderr); the partitions, oldest first."""
    started = time.perf_counter()
    length = partitions.length_seconds_of(env.settings.raw_partition_hours)
    if length != HOUR:
        # The plan puts rows in whole hours; other lengths would split or merge them.
        raise ValueError(f"bench scale loads hour partitions; raw_partition_hours is "
                         f"{env.settings.raw_partition_hours}")
    with _connection(env) as conn, db.translated_errors(), conn.cursor() as cursor:
        names = [partitions.ensure(cursor, partitions.RAW, hour.start, length)
                 for hour in plan]
        conn.commit()
    total = sum(hour.rows for hour in plan)
    lock = threading.Lock()
    with tqdm(total=total, desc=f"load {total:,} older clicks into {len(plan)} hours",
              unit="row", unit_scale=True, file=sys.stderr) as bar:
        def one(job: tuple[LoadedHour, str]) -> None:
            hour, name = job
            _load_hour(env, hour, name, countries, bar, lock)

        with ThreadPoolExecutor(LOADERS) as pool:
            list(pool.map(one, zip(plan, names, strict=True)))
    return Loaded(names, {name: hour.rows for hour, name in zip(plan, names, strict=True)},
                  time.perf_counter() - started)


def _load_hour(env: BenchEnv, hour: LoadedHour, name: str, countries: Sequence[str],
               bar: tqdm[Any], lock: threading.Lock) -> None:
    schema, table = name.split(".")
    with _connection(env, autocommit=True) as conn, db.translated_errors(), \
            conn.cursor() as cursor:
        cursor.execute(_DEDUP_INDEX_SQL, {"schema": schema, "table": table})
        definition = str(cursor.fetchone()[0])
        cursor.execute(f'DROP INDEX "{schema}"."{table}_dedup_key"')
        inserted = 0
        for first, last in chunks(hour.rows):
            cursor.execute(_INSERT_SQL.format(table=f'"{schema}"."{table}"'), {
                "countries": list(countries), "country_count": len(countries),
                "devices": _DEVICES_BY_SHARE, "device_count": len(_DEVICES_BY_SHARE),
                "ads_per_campaign": ADS_PER_CAMPAIGN,
                "campaigns_per_advertiser": CAMPAIGNS_PER_ADVERTISER,
                "start": hour.start, "step": HOUR / hour.rows, "first": first, "last": last})
            inserted += cursor.rowcount
            with lock:
                bar.update(last - first + 1)
        if inserted != hour.rows:
            raise BenchFailed(f"{name} took {inserted:,} of its {hour.rows:,} rows")
        with lock:
            bar.write(f"  {name}: {hour.rows:,} rows in; building its click_id index",
                      file=sys.stderr)
        cursor.execute(f"SET maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
        cursor.execute(definition)
        cursor.execute(f'VACUUM ANALYZE "{schema}"."{table}"')
        with lock:
            bar.write(f"  {name}: indexed, vacuumed and analyzed", file=sys.stderr)


def settle(env: BenchEnv) -> bool:
    """A CHECKPOINT, so that writing out what loading dirtied is not timed with ingest; False
    if the configured database user may not run one (the runs are timed anyway)."""
    with _connection(env, autocommit=True) as conn, conn.cursor() as cursor:
        try:
            cursor.execute("CHECKPOINT")
        except psycopg2.errors.InsufficientPrivilege:
            return False
    return True


def size(env: BenchEnv, names: Sequence[str]) -> Size:
    """Bytes on disk of the partitions ``names``, with their indexes."""
    with _connection(env) as conn, db.translated_errors(), conn.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(pg_total_relation_size(t::regclass)), 0), "
            "coalesce(sum(pg_table_size(t::regclass)), 0), "
            "coalesce(sum(pg_indexes_size(t::regclass)), 0) FROM unnest(%s::text[]) AS t",
            (list(names),))
        total, heap, indexes = cursor.fetchone()
    return Size(int(total), int(heap), int(indexes))


def drop(env: BenchEnv, range_start: int) -> float:
    """Drop raw's partition starting at ``range_start`` as retention does (detached
    concurrently, so inserts into other partitions go on; the ledger marked); returns the
    seconds it took."""
    engine = db.make_engine(env.settings.database_url, pool_size=1)
    try:
        started = time.perf_counter()
        retention.drop_partition(engine, partitions.RAW_CLICKS, range_start, None)
        return time.perf_counter() - started
    finally:
        engine.dispose()
