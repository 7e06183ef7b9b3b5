"""``farloom bench slice-options``: every layout checked exact, (c)'s close writes, the reads.

``check`` reads back what a candidate wrote for the minute and raises unless every
(slice, value, ad) count, every top k (ranked as the contract says), the hour
rollup and the campaign and advertiser totals equal the counts made in Python.
``write_from_redis`` is (c)'s close: the sets read back, written as rows (COPY)
or as ranked arrays. ``time_reads`` times the top-100 reads and checks each answer.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg2.extras import execute_values

from farloom_tasks.bench import slice_postgresql as sql
from farloom_tasks.bench.slice_bench_options import SliceBenchOptions
from farloom_tasks.bench.slice_workload import ADVERTISER, Expected, SlicedMinute
from farloom_tasks.core.topk import AdCount, top_k
from farloom_tasks.errors import BenchFailed


@dataclass(frozen=True)
class Truth:
    counts: Expected
    minute: SlicedMinute


@dataclass(frozen=True)
class Written:
    rows: int  # rows written for the minute (every table of the layout)
    values: int  # (slice, value) pairs


@dataclass
class Reads:
    latencies: dict[str, list[float]]  # read name -> seconds of each request

    def percentile(self, name: str, q: float) -> float:
        ordered = sorted(self.latencies[name])
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # nearest rank


def _fail(name: str, what: str) -> None:
    raise BenchFailed(f"slice candidate {name!r} is not exact: {what}")


def _fetch(conn: Any, statement: str, m: int) -> list[tuple[Any, ...]]:
    with conn.cursor() as cursor:
        cursor.execute(statement, {"m": m})
        return list(cursor.fetchall())


def _owners(conn: Any, m: int) -> dict[tuple[str, str], int]:
    return {(kind, owner): int(clicks) for kind, owner, clicks in _fetch(
        conn, f"SELECT kind, owner, clicks FROM {sql.SCHEMA}.owner_minutes "
              "WHERE minute = to_timestamp(%(m)s)", m)}


def check(conn: Any, name: str, m: int, truth: Truth) -> Written:
    want = truth.counts.per_value
    owners = _owners(conn, m)
    if owners != truth.counts.owners:
        _fail(name, "the campaign and advertiser totals differ")
    if name.endswith("compact"):
        got: dict[tuple[str, str], dict[str, int]] = {}
        for slice_name, value, ads, clicks in _fetch(
                conn, f"SELECT slice, value, ad_ids, clicks FROM {sql.SCHEMA}.compact_minute "
                      "WHERE minute = to_timestamp(%(m)s)", m):
            ranked = list(zip(ads, (int(c) for c in clicks), strict=True))
            if ranked != top_k(ranked, len(ranked)):
                _fail(name, f"the array of {slice_name}={value} is not ranked")
            got[(slice_name, value)] = dict(ranked)
        if got != want:
            _fail(name, "the per-ad counts differ")
        return Written(rows=len(got) + len(owners), values=len(got))
    got = {}
    for slice_name, value, ad, clicks in _fetch(
            conn, f"SELECT slice, value, ad_id, clicks FROM {sql.SCHEMA}.minute_rows "
                  "WHERE minute = to_timestamp(%(m)s)", m):
        got.setdefault((slice_name, value), {})[ad] = int(clicks)
    if got != want:
        _fail(name, "the per-ad counts differ")
    tops: dict[tuple[str, str], list[AdCount]] = {}
    for slice_name, value, ad, clicks in _fetch(
            conn, f"SELECT slice, value, ad_id, clicks FROM {sql.SCHEMA}.minute_top "
                  "WHERE minute = to_timestamp(%(m)s) ORDER BY slice, value, rank", m):
        tops.setdefault((slice_name, value), []).append((ad, int(clicks)))
    k = max((len(t) for t in tops.values()), default=0)
    if tops != {key: top_k(ads.items(), k) for key, ads in want.items()}:
        _fail(name, "a top k differs")
    hours = _fetch(conn, f"SELECT slice, value, ad_id, clicks FROM {sql.SCHEMA}.hour_rows", m)
    if hours and {(s, v, a): int(c) for s, v, a, c in hours} != {
            (s, v, a): c for (s, v), ads in want.items() for a, c in ads.items()}:
        _fail(name, "the hour rollup differs from the minute")
    rows = truth.counts.rows
    return Written(rows=rows + sum(len(t) for t in tops.values()) + len(hours) + len(owners),
                   values=len(got))


def _owner_rows(minute: SlicedMinute, read: dict[tuple[str, str], dict[str, int]]
                ) -> list[tuple[str, str, int]]:
    # Campaign totals from the per-advertiser sets (they hold every ad) and the
    # catalog's ad -> campaign, as the closer would have it from agg.ads.
    totals: dict[tuple[str, str], int] = {}
    for (slice_name, advertiser), ads in read.items():
        if slice_name != ADVERTISER:
            continue
        totals[("advertiser", advertiser)] = sum(ads.values())
        for ad, clicks in ads.items():
            key = ("campaign", minute.campaign_of[ad])
            totals[key] = totals.get(key, 0) + clicks
    return [(kind, owner, clicks) for (kind, owner), clicks in totals.items()]


def _copy(cursor: Any, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
    text = "".join("\t".join(str(v) for v in row) + "\n" for row in rows)
    cursor.copy_expert(f"COPY {sql.SCHEMA}.{table} ({columns}) FROM STDIN", io.StringIO(text))


def write_from_redis(conn: Any, name: str, read: dict[tuple[str, str], dict[str, int]],
                     minute: SlicedMinute, k: int) -> None:
    """(c)'s close after the read: one transaction writing layout ``name``, committed."""
    m = minute.workload.minute
    stamp = f"to_timestamp({m})"
    with conn.cursor() as cursor:
        cursor.execute(f"SELECT {stamp}")
        at = cursor.fetchone()[0].isoformat()
        execute_values(cursor, f"INSERT INTO {sql.SCHEMA}.owner_minutes "
                               "(minute, kind, owner, clicks, revision) VALUES %s",
                       [(at, kind, owner, clicks, 1)
                        for kind, owner, clicks in _owner_rows(minute, read)], page_size=5000)
        if name.endswith("compact"):
            rows = []
            for (slice_name, value), ads in read.items():
                ranked = top_k(ads.items(), len(ads))
                rows.append((at, slice_name, value, [a for a, _ in ranked],
                             [c for _, c in ranked], 1))
            execute_values(cursor, f"INSERT INTO {sql.SCHEMA}.compact_minute "
                                   "(minute, slice, value, ad_ids, clicks, revision) VALUES %s",
                           rows, page_size=100)
        else:
            _copy(cursor, "minute_rows", "minute, slice, value, ad_id, clicks, revision",
                  [(at, s, v, ad, c, 1) for (s, v), ads in read.items()
                   for ad, c in ads.items()])
            _copy(cursor, "minute_top", "minute, slice, value, rank, ad_id, clicks, revision",
                  [(at, s, v, rank, ad, c, 1) for (s, v), ads in read.items()
                   for rank, (ad, c) in enumerate(top_k(ads.items(), k), start=1)])
            cursor.execute(sql.hour_from_minute_rows(), {"m": m})
    conn.commit()


def time_reads(conn: Any, m: int, options: SliceBenchOptions, truth: Truth, k: int,
               value: tuple[str, str]) -> Reads:
    """Each read ``options.requests`` times, round-robin; every answer checked."""
    ads = truth.counts.per_value[value]
    want = [(ad, clicks * options.read_minutes)
            for ad, clicks in top_k(ads.items(), min(k, len(ads)))]
    params = {"m": m, "s": value[0], "v": value[1], "n": k, "minutes": options.read_minutes}
    latencies: dict[str, list[float]] = {name: [] for name in sql.READS}
    with conn.cursor() as cursor:
        for _ in range(options.requests):
            for name, statement in sql.READS.items():
                started = time.perf_counter()
                cursor.execute(statement, params)
                got = [(ad, int(clicks)) for ad, clicks in cursor.fetchall()]
                latencies[name].append(time.perf_counter() - started)
                conn.rollback()
                if got != want:
                    raise BenchFailed(f"the read {name!r} is not the exact top {k}")
    return Reads(latencies)
