"""``farloom bench api --slices``: GET /v1/ads/top?country=US against the unfiltered top.

Issue 13's target: the filtered top 100 over 60 minutes answers in under 200 ms
(p99). The benchmark makes its own throw-away database (as ``farloom bench api``),
fills it with slice data as the close writes it, and times both tops through HTTP
against a real ``farloom serve`` on the read-only role, in one run and interleaved,
so that the machine's load weighs on both alike:

- per minute, ``clicks`` clicks over ``ads`` ads, one each and the rest Zipf (the
  per-ad counts of ``farloom bench aggregate``), each ad's clicks split over
  slice_workload's 50 countries with weight 1/rank**1.2 (the US about a quarter);
- the ``country`` slice's minute rows (``agg.slice_values``: one row per value with
  every ad ranked in its arrays, ``agg.slice_minutes``) and its hour and day rollups
  and totals; the per-ad minute rows, their rollups and totals, equal to the slice's
  sums, for the unfiltered baseline;
- a few distinct template minutes, cycled over the filled minutes: splitting 100,000
  ads over 50 countries costs 5,000,000 rows a minute to make, and a read costs the
  same whichever template a minute is (it unnests every ad of every minute).

Scenarios: the latest 60 minutes (which the fill makes unaligned: 30 edge minutes in
each of two hours, all read from minute rows by their heads), and one aligned whole
hour (filtered: its built hour rollup alone, so its first 100 rows by the ranked
index; unfiltered: one row per ad of the per-ad hour rollup). Before timing, each
filtered answer is checked once against the same top summed straight from the minute
rows in SQL.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from random import Random

import sqlalchemy as sa

from farloom_tasks.bench.aggregate_workload import zipf_counts
from farloom_tasks.bench.api import (
    Timing,
    _get,
    _scratch_database,
    _timed,
    api_server,
    make_minute_partitions,
    make_partitions,
    timing,
)
from farloom_tasks.bench.api_slice_options import SliceApiOptions
from farloom_tasks.bench.report import write_section
from farloom_tasks.bench.slice_workload import COUNTRIES, COUNTRY_SKEW
from farloom_tasks.core.partitions import DAY, HOUR, start_of
from farloom_tasks.core.windows import MINUTE, iso, minute_of, to_datetime
from farloom_tasks.errors import BenchFailed
from farloom_tasks.settings import Settings
from farloom_tasks.stores import db, partitions

SECTION = "filtered-reads"
TARGET_SECONDS = 0.2
SLICE = "country"
VALUE = "US"
FILL_WORK_MEM = "512MB"


@dataclass(frozen=True)
class Filled:
    first: int  # the first filled minute (an hour's start)
    last: int  # the last filled minute (the API's last closed one)
    minutes: int
    clicks: int  # clicks in a minute
    per_minute_rows: int  # agg.ad_clicks_per_minute rows of a minute (every ad)
    us_ads: int  # distinct ads of the US value in a minute (mean over templates)
    us_share: float  # the US's share of the clicks


def run(options: SliceApiOptions, settings: Settings) -> int:
    """Fill, time, report; 0 if both filtered scenarios met the target."""
    if options.minutes < 61:
        raise BenchFailed(f"--slice-minutes {options.minutes}: at least 61 are needed for a "
                          "whole hour and the latest 60 minutes")
    with _scratch_database(settings.database_url) as url:
        started = time.perf_counter()
        filled = fill(url, options, partitions.length_seconds_of(settings.minute_partition_hours))
        print(f"filled {filled.minutes} minutes of {filled.clicks:,} clicks over "
              f"{filled.per_minute_rows:,} ads in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)
        with api_server(url) as base:
            scenarios = _scenarios(filled)
            _check_against_minutes(url, base, scenarios)
            timings = _measure(base, scenarios, options.requests)
        load = os.getloadavg()
    body = report(timings, options, filled, load)
    print(body)
    if options.write_docs:
        write_section(SECTION, body, options.docs)
        print(f"wrote {options.docs}", file=sys.stderr)
    return 0 if all(t.p99 < TARGET_SECONDS for t in timings if t.label.startswith(VALUE)) else 1


# The window of each scenario as query parameters, and the minutes it covers.
Scenario = tuple[str, str, int, int]  # label, query, first, last


def _scenarios(filled: Filled) -> list[tuple[Scenario, Scenario]]:
    """(filtered, unfiltered) pairs over the same windows."""
    latest = (filled.last - 59 * MINUTE, filled.last)
    hour = (filled.first, filled.first + 59 * MINUTE)
    pairs = []
    for name, query, (first, last) in (
            ("latest 60 minutes (unaligned: all 60 are edge minutes)", "minutes=60", latest),
            ("one aligned hour (its hour rollup)", f"from={iso(hour[0])}&to={iso(hour[1])}",
             hour)):
        pairs.append(((f"{VALUE}, {name}", f"n=100&{query}&country={VALUE}", first, last),
                      (f"all, {name}", f"n=100&{query}", first, last)))
    return pairs


def _check_against_minutes(url: str, base: str, pairs: list[tuple[Scenario, Scenario]]) -> None:
    """Each filtered answer equals the top summed straight from the value's minute rows."""
    engine = db.make_engine(url, pool_size=1)
    try:
        for (label, query, first, last), _ in pairs:
            with urllib.request.urlopen(f"{base}/v1/ads/top?{query}", timeout=60) as response:
                answer = [(ad["ad_id"], ad["clicks"]) for ad in json.loads(response.read())["ads"]]
            with engine.connect() as conn:
                conn.exec_driver_sql(f"SET work_mem = '{FILL_WORK_MEM}'")
                rows = conn.execute(sa.text("""
                    SELECT u.ad_id, sum(u.clicks) AS clicks
                    FROM agg.slice_values v, unnest(v.ad_ids, v.ad_clicks) AS u(ad_id, clicks)
                    WHERE v.slice = :s AND v.value = :v AND v.minute BETWEEN :first AND :last
                    GROUP BY u.ad_id ORDER BY clicks DESC, u.ad_id COLLATE "C" LIMIT 100
                """), {"s": SLICE, "v": VALUE, "first": to_datetime(first),
                       "last": to_datetime(last)}).all()
            if answer != [(row.ad_id, int(row.clicks)) for row in rows] or len(answer) != 100:
                raise BenchFailed(f"{label}: the API's top differs from the minutes' sum")
    finally:
        engine.dispose()


def _measure(base: str, pairs: list[tuple[Scenario, Scenario]],
             requests: int) -> list[Timing]:
    timings = []
    for filtered, unfiltered in pairs:
        for _ in range(3):  # warm the pool and the buffer cache, as a running API is
            _get(f"{base}/v1/ads/top?{filtered[1]}")
            _get(f"{base}/v1/ads/top?{unfiltered[1]}")
        samples: dict[str, list[float]] = {filtered[0]: [], unfiltered[0]: []}
        for _ in range(requests):  # interleaved: load changes weigh on both alike
            samples[filtered[0]].append(_timed(f"{base}/v1/ads/top?{filtered[1]}"))
            samples[unfiltered[0]].append(_timed(f"{base}/v1/ads/top?{unfiltered[1]}"))
        timings += [timing(label, found) for label, found in samples.items()]
    return timings


def _machine(load: tuple[float, float, float]) -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({model}), shared with other work; load average "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1, 5, 15 min) at the end of "
            "the timing")


def report(timings: list[Timing], options: SliceApiOptions, filled: Filled,
           load: tuple[float, float, float]) -> str:
    lines = [
        "## Filtered reads",
        "",
        f"`farloom bench api --slices`: GET /v1/ads/top?country={VALUE}&n=100 against the "
        f"unfiltered GET /v1/ads/top?n=100 over the same windows, through HTTP against "
        f"`farloom serve` (read-only role, one client, the two interleaved request by "
        f"request, {options.requests} requests each). Data: {filled.minutes} minutes of "
        f"{filled.clicks:,} clicks over {filled.per_minute_rows:,} ads (one each, the rest "
        f"Zipf), each ad's clicks split over {len(COUNTRIES)} countries by share "
        f"(weight 1/rank^{COUNTRY_SKEW}: the US "
        f"{filled.us_share:.1%} of the clicks, {filled.us_ads:,} distinct ads a minute), "
        f"written as the close writes the `{SLICE}` slice (one ranked row per value and "
        f"minute) with its hour and day rollups, and the per-ad minute rows and rollups "
        f"for the baseline; {options.templates} "
        "distinct minutes cycled. Each filtered answer was checked against the same top "
        f"summed from the minute rows. Machine: {_machine(load)}.",
        "",
        "| scenario | requests | p50 ms | p99 ms | worst ms | target | met |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for t in timings:
        judged = t.label.startswith(VALUE)
        target = f"p99 < {TARGET_SECONDS * 1000:.0f} ms" if judged else "(baseline)"
        verdict = ("met" if t.p99 < TARGET_SECONDS else "**not met**") if judged else ""
        lines.append(f"| {t.label} | {t.requests} | {t.p50 * 1000:.1f} | {t.p99 * 1000:.1f} "
                     f"| {t.worst * 1000:.1f} | {target} | {verdict} |")
    return "\n".join(lines)


# --- the fill -------------------------------------------------------------------------

# Each ad's n clicks split over the countries by systematic sampling: with the
# countries' cumulative shares [lo, hi) and one random offset u per ad, a country gets
# floor(n*hi + u) - floor(n*lo + u) clicks. The counts sum to exactly n (the terms
# telescope), never go negative, and average n times the country's share; an ad with
# one click lands in one country, drawn by share.
_SPLIT_SQL = """
    INSERT INTO bench_api.split (t, country, ad_id, clicks)
    SELECT :t, code, ad_id, clicks FROM (
        SELECT c.code, a.ad_id, (floor(a.n * c.hi + a.u) - floor(a.n * c.lo + a.u))::int
               AS clicks
        FROM (SELECT ad_id, n, random() AS u
              FROM unnest(CAST(:ads AS text[]), CAST(:counts AS int[])) AS x(ad_id, n)) AS a,
             unnest(CAST(:codes AS text[]), CAST(:los AS float8[]), CAST(:his AS float8[]))
                 AS c(code, lo, hi)
    ) AS split
    WHERE clicks > 0
"""
# A minute's value rows as the slice writer makes them: every ad ranked (clicks
# descending, then ad_id in code-point order), so the top k is the head.
_ROWS_SQL = """
    INSERT INTO bench_api.value_rows (t, value, clicks, distinct_ads, ad_ids, ad_clicks)
    SELECT t, country, sum(clicks), count(*),
           array_agg(ad_id ORDER BY clicks DESC, ad_id COLLATE "C"),
           array_agg(clicks::bigint ORDER BY clicks DESC, ad_id COLLATE "C")
    FROM bench_api.split GROUP BY t, country
"""
_MINUTES_SQL = """
    INSERT INTO agg.slice_values (minute, slice, value, revision, clicks, distinct_ads, ad_ids,
                                  ad_clicks)
    SELECT w.minute, :slice, r.value, 1, r.clicks, r.distinct_ads, r.ad_ids, r.ad_clicks
    FROM unnest(CAST(:minutes AS timestamptz[]), CAST(:ts AS int[])) AS w(minute, t)
    JOIN bench_api.value_rows r ON r.t = w.t;
    INSERT INTO agg.slice_minutes (minute, slice, revision, clicks)
    SELECT w.minute, :slice, 1, (SELECT sum(clicks) FROM bench_api.value_rows r WHERE r.t = w.t)
    FROM unnest(CAST(:minutes AS timestamptz[]), CAST(:ts AS int[])) AS w(minute, t);
    INSERT INTO agg.ad_clicks_per_minute (minute, ad_id, clicks, revision)
    SELECT w.minute, a.ad_id, a.clicks, 1
    FROM unnest(CAST(:minutes AS timestamptz[]), CAST(:ts AS int[])) AS w(minute, t)
    JOIN bench_api.ad_totals a ON a.t = w.t;
    INSERT INTO agg.minute_totals (minute, clicks, distinct_ads, revision, computed_at)
    SELECT w.minute, sum(a.clicks), count(*), 1, now()
    FROM unnest(CAST(:minutes AS timestamptz[]), CAST(:ts AS int[])) AS w(minute, t)
    JOIN bench_api.ad_totals a ON a.t = w.t GROUP BY w.minute
"""
# A period's rollups: each template's rows times how many of the period's minutes use it,
# so each row is the sum of its minutes, as the writers keep them. The first two
# statements are the slice's, the last two the per-ad baseline's.
_ROLLUPS_SQL = """
    INSERT INTO agg.slice_ad_clicks_per_{grain} (slice, value, {grain}, ad_id, clicks)
    SELECT :slice, s.country, w.period, s.ad_id, sum(s.clicks::bigint * w.uses)
    FROM unnest(CAST(:periods AS timestamptz[]), CAST(:ts AS int[]), CAST(:uses AS int[]))
         AS w(period, t, uses)
    JOIN bench_api.split s ON s.t = w.t GROUP BY 1, 2, 3, 4;
    INSERT INTO agg.slice_totals_per_{grain} (slice, value, {grain}, clicks)
    SELECT slice, value, {grain}, sum(clicks) FROM agg.slice_ad_clicks_per_{grain}
    GROUP BY 1, 2, 3;
    INSERT INTO agg.ad_clicks_per_{grain} ({grain}, ad_id, clicks)
    SELECT w.period, a.ad_id, sum(a.clicks::bigint * w.uses)
    FROM unnest(CAST(:periods AS timestamptz[]), CAST(:ts AS int[]), CAST(:uses AS int[]))
         AS w(period, t, uses)
    JOIN bench_api.ad_totals a ON a.t = w.t GROUP BY 1, 2;
    INSERT INTO agg.{grain}_totals ({grain}, clicks)
    SELECT {grain}, sum(clicks) FROM agg.ad_clicks_per_{grain} GROUP BY 1
"""
_ANALYZED = ("agg.slice_values", "agg.slice_minutes", "agg.ad_clicks_per_minute",
             "agg.minute_totals", "agg.slice_ad_clicks_per_hour", "agg.slice_ad_clicks_per_day",
             "agg.slice_totals_per_hour", "agg.slice_totals_per_day", "agg.ad_clicks_per_hour",
             "agg.ad_clicks_per_day", "agg.hour_totals", "agg.day_totals")


def fill(url: str, options: SliceApiOptions, partition_seconds: int) -> Filled:
    """The minutes, ending 30 minutes into the hour after a whole one, and their rollups."""
    first = start_of(minute_of(time.time()), HOUR) - 2 * HOUR
    minutes = [first + i * MINUTE for i in range(options.minutes)]
    if len(minutes) >= 90:  # end 30 minutes into an hour: the latest 60 are unaligned
        minutes = minutes[:len(minutes) - (len(minutes) - 30) % 60]
    template_of = {m: i % options.templates for i, m in enumerate(minutes)}
    rng = Random(options.seed)
    ads = [f"ad-{n:07d}" for n in rng.sample(range(10 * options.ads), options.ads)]
    counts = zipf_counts(options.clicks, options.ads, 1.0)
    weights = [1.0 / rank**COUNTRY_SKEW for rank in range(1, len(COUNTRIES) + 1)]
    bounds = [sum(weights[:i]) / sum(weights) for i in range(len(weights) + 1)]
    bounds[-1] = 1.0  # exactly: every click lands in some country
    engine = db.make_engine(url, pool_size=1)
    try:
        make_minute_partitions(engine, minutes[0], minutes[-1], partition_seconds)
        make_partitions(engine, partitions.SLICES, minutes[0], minutes[-1], partition_seconds)
        with db.translated_errors(), engine.begin() as conn:
            conn.exec_driver_sql(f"SET LOCAL work_mem = '{FILL_WORK_MEM}'")
            conn.exec_driver_sql("CREATE SCHEMA bench_api")
            conn.exec_driver_sql("CREATE TABLE bench_api.split (t int, country text COLLATE "
                                 '"C", ad_id text COLLATE "C", clicks int)')
            conn.exec_driver_sql("CREATE TABLE bench_api.value_rows (t int, value text, "
                                 "clicks bigint, distinct_ads int, ad_ids text[], "
                                 "ad_clicks bigint[])")
            for t in range(options.templates):
                conn.execute(sa.text(_SPLIT_SQL), {"t": t, "ads": ads, "counts": counts,
                                                   "codes": list(COUNTRIES),
                                                   "los": bounds[:-1], "his": bounds[1:]})
            conn.exec_driver_sql(_ROWS_SQL)
            conn.exec_driver_sql("CREATE TABLE bench_api.ad_totals AS SELECT t, ad_id, "
                                 "sum(clicks)::bigint AS clicks FROM bench_api.split "
                                 "GROUP BY t, ad_id")
            params = {"slice": SLICE, "minutes": [to_datetime(m) for m in minutes],
                      "ts": [template_of[m] for m in minutes]}
            for statement in _MINUTES_SQL.split(";"):
                conn.execute(sa.text(statement), params)
            for grain, unit in (("hour", HOUR), ("day", DAY)):
                uses = Counter((start_of(m, unit), t) for m, t in template_of.items())
                # The slice's rollups exist only for built periods, each built once its
                # minutes are all closed (pipeline/slice_rollup_builds.py): the whole
                # ones here. The per-ad rollups hold the current period too.
                whole = {p for p, _ in uses
                         if sum(n for (q, _), n in uses.items() if q == p) == unit // MINUTE}
                statements = _ROLLUPS_SQL.format(grain=grain).split(";")
                for i, statement in enumerate(statements):
                    kept = {key: n for key, n in uses.items() if i >= 2 or key[0] in whole}
                    conn.execute(sa.text(statement), {
                        "slice": SLICE, "periods": [to_datetime(p) for p, _ in kept],
                        "ts": [t for _, t in kept], "uses": list(kept.values())})
                conn.execute(sa.text(
                    "INSERT INTO agg.slice_rollup_periods (grain, period, slice) "
                    "SELECT :grain, unnest(CAST(:periods AS timestamptz[])), :slice"),
                    {"grain": grain, "slice": SLICE,
                     "periods": [to_datetime(p) for p in sorted(whole)]})
            made = conn.execute(sa.text("""
                SELECT (SELECT sum(clicks) FROM bench_api.value_rows) / :n AS clicks,
                       (SELECT count(*) FROM bench_api.ad_totals) / :n AS rows,
                       (SELECT avg(distinct_ads) FROM bench_api.value_rows WHERE value = :v)
                           AS us_ads,
                       (SELECT sum(clicks) FILTER (WHERE value = :v)::float8 / sum(clicks)
                        FROM bench_api.value_rows) AS us_share
            """), {"v": VALUE, "n": options.templates}).one()
            conn.exec_driver_sql("DROP SCHEMA bench_api CASCADE")
        with db.translated_errors(), engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in _ANALYZED:  # as autovacuum would: index-only scans need the map
                conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
    finally:
        engine.dispose()
    return Filled(minutes[0], minutes[-1], len(minutes), int(made.clicks), int(made.rows),
                  int(made.us_ads), float(made.us_share))

