"""``farloom bench slice-options``: where should slice counts be made? Measured side by side.

One minute of ``--clicks`` clicks over ``--ads`` ads (``farloom bench aggregate``'s
Zipf), each click with a country, a device, a campaign and an advertiser
(``slice_workload.py``), loaded into ``raw.ad_clicks`` of a throw-away
environment. Then ``--rounds`` interleaved rounds, each measuring:

- the baseline: the raw GROUP BY by ad alone, and the PostgreSQL-only per-ad close
  (``aggregate_sql.postgresql_only``: per-ad rows, top k, totals);
- (a) PostgreSQL at close, rows (with and without the hour rollup) and (b) compact
  (``slice_postgresql.py``): one transaction each, from its start to its commit;
- (c) Redis at ingest (``slice_redis.py``): the ingest-side cost over every batch of
  the minute with dimensions off and on, then at close the sets read back and
  written as (a) rows or (b) arrays, from the first read to the commit;
- the real ingest worker draining 100-click messages with dimensions off (the
  figure the ingest-side extra is set against);
- the reads: the top 100 of ``country=US`` over 60 minutes (60 copies of the
  minute's US rows, see ``slice_postgresql.load_reads``), ``--requests`` times each.

Every written layout is checked exact against counts made in Python before its
figure is kept (``slice_checks.py``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

from farloom_tasks.bench import ingest, slice_checks, slice_redis
from farloom_tasks.bench import slice_postgresql as sql
from farloom_tasks.bench.aggregate_sql import group_by_seconds, postgresql_only
from farloom_tasks.bench.env import BenchEnv, describe_machine, isolated_bench_env
from farloom_tasks.bench.report import machine_markdown, write_section
from farloom_tasks.bench.slice_bench_options import SliceBenchOptions
from farloom_tasks.bench.slice_report import Round, markdown
from farloom_tasks.bench.slice_workload import (
    SlicedMinute,
    expected,
    load_raw,
    make_sliced_minute,
)
from farloom_tasks.bench.traffic import Traffic
from farloom_tasks.core.dimensions import parse_dimensions
from farloom_tasks.core.partitions import HOUR
from farloom_tasks.errors import BenchFailed
from farloom_tasks.settings import Settings
from farloom_tasks.stores import db, partitions, redis_client

SECTION = "slices"
INGEST_CAP_SECONDS = 600.0
IDLE_SECONDS = 1.0  # s the burst-mode worker waits on an empty queue before exiting
READ_VALUE = ("country", "US")


def _timed(conn: Any, statement: str, params: dict[str, Any]) -> float:
    with conn.cursor() as cursor:
        started = time.perf_counter()
        cursor.execute(statement, params)
        conn.commit()
        return time.perf_counter() - started


def _untimed(conn: Any, *statements: str, params: dict[str, Any] | None = None) -> None:
    with conn.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement, params or {})
    conn.commit()


def _size(conn: Any, tables: tuple[str, ...]) -> int:
    with conn.cursor() as cursor:
        cursor.execute("SELECT " + sql.size_of(tables))
        return int(cursor.fetchone()[0])


def _redis_bytes(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


def _contended(env: BenchEnv, conn: Any, statement: str, params: dict[str, Any],
               minute: SlicedMinute) -> tuple[float, float]:
    """(slice s, per-ad close s): the slice statement and the PostgreSQL-only per-ad
    close started together, as a close would run them, on the machine's cores."""
    engine = db.make_engine(env.settings.database_url, pool_size=1)
    start = threading.Barrier(2)
    timed: list[float] = []

    def slices() -> None:
        start.wait()
        timed.append(_timed(conn, statement, params))

    worker = threading.Thread(target=slices, name="slice-close")
    try:
        worker.start()
        start.wait()
        per_ad = postgresql_only(engine, minute.workload, env.settings.top_k, 1)
    finally:
        worker.join()
        engine.dispose()
    if not timed:
        raise BenchFailed("the slice statement run beside the per-ad close failed")
    return timed[0], per_ad


def one_round(env: BenchEnv, minute: SlicedMinute, truth: slice_checks.Truth,
              options: SliceBenchOptions, conn: Any, keep: set[str],
              first: bool) -> Round:
    settings, m, k = env.settings, minute.workload.minute, env.settings.top_k
    params = {"m": m, "r": 1, "k": k}
    figures = Round()
    if options.ingest_messages:
        row = ingest.run_preloaded(env, "farloom", Traffic(100, time.time()),
                                   options.ingest_messages, INGEST_CAP_SECONDS, IDLE_SECONDS,
                                   keep=keep)
        if not row.complete:
            raise BenchFailed(f"the ingest drain did not complete: {row.note}")
        figures.ingest_clicks_per_s = row.clicks_per_s
    engine = db.make_engine(settings.database_url, pool_size=1)
    try:
        figures.group_by_ad = group_by_seconds(engine, m)
        figures.per_ad_close = postgresql_only(engine, minute.workload, k, 1)
    finally:
        engine.dispose()
    slices = minute.slices
    for name, statement, tables in (
            ("rows", sql.rows_at_close(slices, hour_rollup=True), sql.ROWS_TABLES),
            ("rows_without_hour", sql.rows_at_close(slices, hour_rollup=False),
             sql.ROWS_TABLES),
            ("compact", sql.compact_at_close(slices), sql.COMPACT_TABLES)):
        _untimed(conn, sql.truncate(tables))
        figures.close[name] = _timed(conn, statement, params)
        figures.written[name] = slice_checks.check(conn, name, m, truth)
        figures.bytes[name] = _size(conn, tables)
    for name, statement, tables in (
            ("rows", sql.rows_at_close(slices, hour_rollup=True), sql.ROWS_TABLES),
            ("compact", sql.compact_at_close(slices), sql.COMPACT_TABLES)):
        _untimed(conn, sql.truncate(tables))
        figures.contended[name] = _contended(env, conn, statement, params, minute)
        slice_checks.check(conn, name, m, truth)
    if first:  # the reads' tables copy what (a) and (b) just wrote
        _untimed(conn, *sql.load_reads(options.read_minutes), params={
            "m": m, "s": READ_VALUE[0], "v": READ_VALUE[1]})
        # Vacuumed, as autovacuum would have them by then: index-only scans need it.
        driver = conn.driver_connection
        driver.autocommit = True  # VACUUM runs outside a transaction
        with driver.cursor() as cursor:
            for table in sql.READ_TABLES:
                cursor.execute(f"VACUUM ANALYZE {sql.SCHEMA}.{table}")
        driver.autocommit = False
    client = redis_client.connect(settings)
    try:
        for with_slices in (False, True):
            redis_client.flush_db(client)
            before = _redis_bytes(client)
            cost = slice_redis.ingest_minute(minute, client, conn, settings.shard_count,
                                             settings.batch_size,
                                             settings.redis_retention_seconds, with_slices)
            figures.ingest[with_slices] = cost
            figures.redis_bytes[with_slices] = _redis_bytes(client) - before
        for name, tables in (("redis_rows", sql.ROWS_TABLES),
                             ("redis_compact", sql.COMPACT_TABLES)):
            _untimed(conn, sql.truncate(tables))
            started = time.perf_counter()
            read = slice_redis.read_slices(client, m, settings.shard_count)
            slice_checks.write_from_redis(conn, name, read, minute, k)
            figures.close[name] = time.perf_counter() - started
            figures.written[name] = slice_checks.check(conn, name, m, truth)
            figures.bytes[name] = _size(conn, tables)
    finally:
        client.close()
    figures.reads = slice_checks.time_reads(conn, m, options, truth, k, READ_VALUE)
    figures.load_average = os.getloadavg()[0]
    return figures


def run(options: SliceBenchOptions, settings: Settings) -> int:
    logging.getLogger("pika").setLevel(logging.WARNING)
    slices = parse_dimensions(options.dimensions)
    started = datetime.now(UTC)
    with isolated_bench_env(settings) as env:
        machine = describe_machine(env.settings)
        # Three hours back, on the hour: the hour of 60 read minutes starts there, and
        # the ingest drains' clicks (dated now) land in another raw partition.
        m = (int(time.time()) // HOUR - 3) * HOUR
        minute = make_sliced_minute(m, options.clicks, options.ads, options.zipf,
                                    options.seed, slices)
        truth = slice_checks.Truth(expected(minute), minute)
        load_raw(env, minute)
        engine = db.make_engine(env.settings.database_url, pool_size=1)
        try:
            with db.translated_errors():
                conn: Any = engine.raw_connection()
            try:
                with conn.cursor() as cursor:
                    keep = {partitions.ensure(cursor, partitions.RAW, m,
                                              partitions.length_seconds_of(
                                                  env.settings.raw_partition_hours)),
                            sql.SCHEMA}
                    cursor.execute(sql.CREATE)
                conn.commit()
                rounds = []
                for number in range(options.rounds):
                    print(f"round {number + 1} of {options.rounds}", file=sys.stderr)
                    rounds.append(one_round(env, minute, truth, options, conn, keep,
                                            first=number == 0))
            finally:
                conn.close()
        finally:
            engine.dispose()
    body = markdown(rounds, minute, truth, options, env.settings, started)
    body = body + "\n\nMachine:\n\n" + machine_markdown(machine)
    print(body)
    if options.report is not None:
        options.report.write_text(json.dumps([r.as_json() for r in rounds], indent=2))
    if options.write_docs:
        write_section(SECTION, "## Where slices are made\n\n" + body, options.docs)
        print(f"wrote {options.docs}", file=sys.stderr)
    return 0
