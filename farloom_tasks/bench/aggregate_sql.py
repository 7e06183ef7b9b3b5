"""What ``farloom bench aggregate`` reads and times in PostgreSQL directly.

The exactness check on agg (every result is checked before it is reported),
the PostgreSQL-only baseline (one transaction of INSERT ... SELECT ... GROUP BY
over ``raw.ad_clicks`` writing the same three tables) and the raw GROUP BY alone,
the floor of a replay from raw.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from farloom_tasks.bench.aggregate_workload import Workload
from farloom_tasks.core.topk import top_k
from farloom_tasks.core.windows import iso
from farloom_tasks.errors import BenchFailed
from farloom_tasks.stores import db


def check_exact(engine: sa.Engine, workload: Workload, k: int) -> int:
    """Raise unless agg holds exactly the workload's counts; returns the revision."""
    m = workload.minute
    with db.translated_errors(), engine.connect() as conn:
        ads: dict[str, int] = dict(conn.execute(sa.text(
            "SELECT ad_id, clicks FROM agg.ad_clicks_per_minute WHERE minute = to_timestamp(:m)"),
            {"m": m}).all())
        top = [tuple(r) for r in conn.execute(sa.text(
            "SELECT ad_id, clicks FROM agg.top_ads WHERE minute = to_timestamp(:m) ORDER BY rank"),
            {"m": m}).all()]
        totals = conn.execute(sa.text(
            "SELECT clicks, distinct_ads, revision FROM agg.minute_totals "
            "WHERE minute = to_timestamp(:m)"), {"m": m}).one()
    problems = []
    if ads != workload.counts:
        problems.append(f"{len(set(ads.items()) ^ set(workload.counts.items()))} per-ad "
                        "counts differ")
    if top != top_k(workload.counts.items(), k):
        problems.append("the top k differs")
    if (totals[0], totals[1]) != (workload.clicks, len(workload.counts)):
        problems.append(f"totals are {totals[0]} clicks over {totals[1]} ads")
    if problems:
        raise BenchFailed(f"agg is not exact for {iso(m)}: " + "; ".join(problems))
    return int(totals[2])


_PG_ONLY = """
DELETE FROM agg.ad_clicks_per_minute WHERE minute = to_timestamp(%(m)s);
DELETE FROM agg.top_ads WHERE minute = to_timestamp(%(m)s);
DELETE FROM agg.minute_totals WHERE minute = to_timestamp(%(m)s);
"""
_PG_ONLY_TIMED = """
INSERT INTO agg.ad_clicks_per_minute (minute, ad_id, clicks, revision)
SELECT minute, ad_id, count(*), %(r)s FROM raw.ad_clicks
WHERE minute = to_timestamp(%(m)s) GROUP BY minute, ad_id;
INSERT INTO agg.top_ads (minute, rank, ad_id, clicks, revision)
SELECT minute, row_number() OVER (ORDER BY clicks DESC, ad_id COLLATE "C"), ad_id, clicks, %(r)s
FROM agg.ad_clicks_per_minute WHERE minute = to_timestamp(%(m)s)
ORDER BY clicks DESC, ad_id COLLATE "C" LIMIT %(k)s;
INSERT INTO agg.minute_totals (minute, clicks, distinct_ads, revision, computed_at)
SELECT minute, sum(clicks), count(*), %(r)s, now() FROM agg.ad_clicks_per_minute
WHERE minute = to_timestamp(%(m)s) GROUP BY minute;
"""


def postgresql_only(engine: sa.Engine, workload: Workload, k: int, revision: int) -> float:
    """Seconds of one transaction computing the minute from raw alone (then checked)."""
    params = {"m": workload.minute, "r": revision, "k": k}
    with db.translated_errors():
        conn: Any = engine.raw_connection()
    try:
        with db.translated_errors(), conn.cursor() as cursor:
            cursor.execute(_PG_ONLY, params)
            conn.commit()
            started = time.perf_counter()
            cursor.execute(_PG_ONLY_TIMED, params)
            conn.commit()
            elapsed = time.perf_counter() - started
    finally:
        conn.close()
    check_exact(engine, workload, k)
    return elapsed


def group_by_seconds(engine: sa.Engine, minute: int) -> float:
    with db.translated_errors(), engine.connect() as conn:
        started = time.perf_counter()
        conn.execute(sa.text("SELECT ad_id, count(*) FROM raw.ad_clicks "
                             "WHERE minute = to_timestamp(:m) GROUP BY ad_id"),
                     {"m": minute}).all()
        return time.perf_counter() - started
