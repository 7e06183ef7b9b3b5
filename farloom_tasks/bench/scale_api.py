"""``farloom bench scale``'s long API windows: days of minutes and months of rollups in agg.

The minutes are ``bench api``'s (``api.fill_minutes``: skewed counts, the set of
ads rotating every 10 minutes). The hour rollups of the hours those minutes
cover are their sums; the older hours follow the same pattern an hour at a
time (six rotations of the ads, ten minutes each); every day is the sum of its
hours, and the totals are the sums of the rollups, so agg holds what the
aggregated writer would have written with minute retention at ``minute_days``.
Then ``GET /v1/ads/top?n=100`` is timed over each window against a real
``farloom serve``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import sqlalchemy as sa
from tqdm import tqdm

from farloom_tasks.bench import api
from farloom_tasks.bench.env import BenchEnv
from farloom_tasks.bench.scale_report import ApiWindow
from farloom_tasks.core.partitions import DAY, HOUR, start_of
from farloom_tasks.core.windows import iso, to_datetime
from farloom_tasks.errors import BenchFailed
from farloom_tasks.stores import db, partitions

WINDOW_TIME_CAP = 60.0  # s of timed requests per window at most
WARM_REQUESTS = 3  # untimed requests per window first, as a running API is warm
ROTATION_MINUTES = 10  # as api.fill_minutes' drift
PEAK = 2000.0  # clicks a minute of the top ad, as api.fill_minutes

_SECONDARY_INDEXES_SQL = """
    SELECT i.indexname, i.indexdef FROM pg_indexes i
    WHERE i.schemaname = 'agg' AND i.tablename = :table
      AND i.indexname NOT IN (SELECT conname FROM pg_constraint
                              WHERE conrelid = ('agg.' || :table)::regclass)
"""
# Hours h0..h1 after :first: in each, six rotations r of :ads ads, ten minutes of
# about peak/rank^0.9 clicks each.
_OLDER_HOURS_SQL = """
    INSERT INTO agg.ad_clicks_per_hour (hour, ad_id, clicks)
    SELECT :first + make_interval(hours => h),
           'ad-' || ((i * 7919 + (h * 6 + r) * 104729) % :universe),
           sum(:rotation * (1 + floor(CAST(:peak AS float8) / power(i::float8, 0.9)
                                      * (0.8 + 0.4 * random()))::bigint))
    FROM generate_series(:h0, :h1) AS h, generate_series(0, 5) AS r,
         generate_series(1, :ads) AS i
    GROUP BY 1, 2
"""
_DAY_SQL = """
    INSERT INTO agg.ad_clicks_per_day (day, ad_id, clicks)
    SELECT :day, ad_id, sum(clicks) FROM agg.ad_clicks_per_hour
    WHERE hour >= :day AND hour < :day + interval '1 day' GROUP BY ad_id
"""
TABLES = ("agg.ad_clicks_per_minute", "agg.ad_clicks_per_hour", "agg.ad_clicks_per_day")


@dataclass(frozen=True)
class Filled:
    rows: dict[str, int]  # table -> rows
    last: int  # the last minute with counts (the API's "now")
    seconds: float


def fill(env: BenchEnv, minute_days: int, rollup_days: int, ads: int, universe: int) -> Filled:
    started = time.perf_counter()
    url = env.settings.database_url
    minute_seconds = partitions.length_seconds_of(env.settings.minute_partition_hours)
    _, last = api.fill_minutes(url, minute_days * 24, ads, universe, minute_seconds)
    first_minute = last - (minute_days * 24 * 60 - 1) * 60
    covered_from = start_of(first_minute, HOUR)  # the first hour the minutes (partly) cover
    oldest = start_of(last, HOUR) - (rollup_days * 24 - 1) * HOUR
    older_hours = (covered_from - oldest) // HOUR
    engine = db.make_engine(url, pool_size=1)
    try:
        with db.translated_errors(), engine.begin() as conn:
            secondary = [row for table in ("ad_clicks_per_hour", "ad_clicks_per_day")
                         for row in conn.execute(sa.text(_SECONDARY_INDEXES_SQL),
                                                 {"table": table}).all()]
            for name, _ in secondary:
                conn.exec_driver_sql(f'DROP INDEX agg."{name}"')
            conn.exec_driver_sql(f"SET LOCAL work_mem = '{api.FILL_WORK_MEM}'")
            conn.exec_driver_sql(api.HOURS_FROM_MINUTES_SQL)
            for day in tqdm(range(0, older_hours, 24), desc="fill agg.ad_clicks_per_hour",
                            unit="day", file=sys.stderr, leave=False):
                conn.execute(sa.text(_OLDER_HOURS_SQL), {
                    "first": to_datetime(oldest), "h0": day, "h1": min(day + 24, older_hours) - 1,
                    "universe": universe, "ads": ads, "peak": PEAK,
                    "rotation": ROTATION_MINUTES})
            for day in tqdm(range(start_of(oldest, DAY), last + 1, DAY),
                            desc="fill agg.ad_clicks_per_day", unit="day", file=sys.stderr,
                            leave=False):
                conn.execute(sa.text(_DAY_SQL), {"day": to_datetime(day)})
            for statement in api.ROLLUP_TOTALS_SQL:
                conn.exec_driver_sql(statement)
            print("building the rollups' indexes", file=sys.stderr)
            for _, definition in secondary:
                conn.exec_driver_sql(definition)
        with db.translated_errors(), engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            for table in api.ROLLUP_TABLES:
                conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
            rows = {table: int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
                               or 0) for table in TABLES}
    finally:
        engine.dispose()
    return Filled(rows, last, time.perf_counter() - started)


def measure(env: BenchEnv, last: int, windows: dict[str, int], requests: int) -> list[ApiWindow]:
    """Time each window's top 100 ending at ``last``, or record how the API refused it."""
    found: list[ApiWindow] = []
    with api.api_server(env.settings.database_url) as base:
        for label, minutes in windows.items():
            url = f"{base}/v1/ads/top?n=100&minutes={minutes}&at={iso(last)}"
            refused = next((r for r in (_refusal(url) for _ in range(WARM_REQUESTS)) if r), "")
            if refused:
                found.append(ApiWindow(label, minutes, 0, refused=refused))
                continue
            samples: list[float] = []
            deadline = time.monotonic() + WINDOW_TIME_CAP
            while len(samples) < requests and time.monotonic() < deadline:
                began = time.perf_counter()
                if refused := _refusal(url):
                    break
                samples.append(time.perf_counter() - began)
            if not samples:
                found.append(ApiWindow(label, minutes, 0, refused=refused))
                continue
            timed = api.timing(label, samples)
            found.append(ApiWindow(label, minutes, len(samples), timed.p50, timed.p99,
                                   timed.worst, refused))
    return found


def _refusal(url: str) -> str:
    """'' if the API answered the top 100; else what it said (status and detail)."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            ads = json.loads(response.read()).get("ads", [])
    except urllib.error.HTTPError as exc:
        detail = ""
        with contextlib.suppress(Exception):
            detail = str(json.loads(exc.read()).get("detail", ""))
        return f"refused: HTTP {exc.code} {detail}".strip()[:200]
    except (urllib.error.URLError, OSError) as exc:
        raise BenchFailed(f"GET {url} failed: {exc}") from exc
    if len(ads) != 100:  # an empty answer would be fast and prove nothing
        raise BenchFailed(f"GET {url} returned {len(ads)} ads, not 100")
    return ""
