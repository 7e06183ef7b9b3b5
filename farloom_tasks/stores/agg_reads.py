"""The query API's SQL, against schema agg only, through the read-only role.

Every function takes a Connection and aligned epoch seconds; the HTTP layer
(app.py) parses and bounds the parameters first. Ranges are inclusive at both
ends: ``first`` and ``last`` are minutes (hours, days for the rollup series),
except the tiled top, which takes the runs of core.tiling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from farloom_tasks.core.partitions import DAY, HOUR
from farloom_tasks.core.tiling import Run
from farloom_tasks.core.windows import MINUTE, iso, to_datetime

API_ROLE = "farloom_api"  # created by migration 0003


def read_only_url(database_url: str, api_database_url: str) -> str:
    """The API's database URL: the explicit setting, else the read-only role on the same
    database with no password (local development: trust or peer authentication)."""
    if api_database_url:
        return api_database_url
    url = make_url(database_url).set(username=API_ROLE, password=None)
    return url.render_as_string(hide_password=False)


@dataclass(frozen=True)
class RankedAd:
    rank: int
    ad_id: str
    clicks: int


def last_closed_minute(conn: sa.Connection) -> int | None:
    """The newest minute with a result in agg (what "now" means for the API)."""
    value = conn.execute(sa.text("SELECT max(minute) FROM agg.minute_totals")).scalar()
    return None if value is None else int(value.timestamp())


# Where each grain's per-ad counts are: table and time column. Each has a covering
# index on (time) INCLUDE (ad_id, clicks), so every branch is an index-only scan.
_PER_AD = {
    MINUTE: ("agg.ad_clicks_per_minute", "minute"),
    HOUR: ("agg.ad_clicks_per_hour", "hour"),
    DAY: ("agg.ad_clicks_per_day", "day"),
}


def _top_sql(runs: Sequence[Run]) -> str:
    """One statement: every run's rows (UNION ALL), summed per ad, ranked, limited.

    Exact: the runs tile the window (core.tiling), each rollup row is the sum of its
    minutes, so the sum per ad is the ad's clicks in the window. Ranked clicks desc,
    then ad_id asc in code-point order (docs/design.md, "Windows, ranking and
    shards"). Casting each row to int4 (one ad's clicks in one minute, hour or day is
    far below 2^31; a larger value fails loudly) makes sum() accumulate in int8
    instead of numeric, which is faster (docs/benchmarks.md, "Figures behind the
    code"). The role's work_mem keeps the hash in memory.
    """
    branches = []
    for i, run in enumerate(runs):
        table, column = _PER_AD[run.grain]
        branches.append(f"SELECT ad_id, clicks::int4 AS clicks FROM {table} "
                        f"WHERE {column} >= :start{i} AND {column} < :end{i}")
    return (f"SELECT ad_id, sum(clicks) AS clicks FROM ({' UNION ALL '.join(branches)}) AS tiles "
            'GROUP BY ad_id ORDER BY clicks DESC, ad_id COLLATE "C" ASC LIMIT :n')


def top_ads_tiled(conn: sa.Connection, runs: Sequence[Run], *, n: int) -> list[RankedAd]:
    """The exact top n over the window the runs tile (core.tiling.tile)."""
    if not runs:
        return []
    params: dict[str, Any] = {"n": n}
    for i, run in enumerate(runs):
        params[f"start{i}"] = to_datetime(run.start)
        params[f"end{i}"] = to_datetime(run.end)
    rows = conn.execute(sa.text(_top_sql(runs)), params).all()
    return [RankedAd(rank, row.ad_id, int(row.clicks)) for rank, row in enumerate(rows, 1)]


def trends(conn: sa.Connection, ad_ids: Sequence[str], *, first: int,
           last: int) -> dict[str, list[int]]:
    """Each ad's clicks in every minute of the range (0 where it had none)."""
    if not ad_ids:
        return {}
    width = (last - first) // MINUTE + 1
    series = {ad_id: [0] * width for ad_id in ad_ids}
    rows = conn.execute(sa.text("""
        SELECT ad_id, minute, clicks FROM agg.ad_clicks_per_minute
        WHERE ad_id = ANY(:ids) AND minute BETWEEN :first AND :last
    """), {"ids": list(ad_ids), "first": to_datetime(first), "last": to_datetime(last)})
    for row in rows:
        series[row.ad_id][(int(row.minute.timestamp()) - first) // MINUTE] = int(row.clicks)
    return series


def ad_clicks(conn: sa.Connection, ad_id: str, *, first: int,
              last: int) -> list[dict[str, Any]]:
    """The ad's clicks per closed minute of the range; a closed minute without the ad is 0.

    Minutes not closed yet (no agg.minute_totals row) are left out rather than
    shown as 0, which would be a lie.
    """
    rows = conn.execute(sa.text("""
        SELECT t.minute, coalesce(a.clicks, 0)::bigint AS clicks
        FROM agg.minute_totals t
        LEFT JOIN agg.ad_clicks_per_minute a ON a.minute = t.minute AND a.ad_id = :ad_id
        WHERE t.minute BETWEEN :first AND :last
        ORDER BY t.minute
    """), {"ad_id": ad_id, "first": to_datetime(first), "last": to_datetime(last)})
    return [{"minute": iso(int(row.minute.timestamp())), "clicks": int(row.clicks)}
            for row in rows]


# An hour's or day's series: every hour (day) of the range from the first that has a
# rollup through the one holding the last closed minute; 0 where the ad has no row
# (a rollup row exists only with clicks: docs/design.md §3.1).
_ROLLUP_SERIES = {
    HOUR: ("agg.hour_totals", "agg.ad_clicks_per_hour", "hour"),
    DAY: ("agg.day_totals", "agg.ad_clicks_per_day", "day"),
}


def ad_clicks_rolled_up(conn: sa.Connection, ad_id: str, grain: int, *, first: int,
                        last: int) -> list[dict[str, Any]]:
    """The ad's clicks per hour or day (``grain``) of first..last, both aligned to it.

    The current hour and day hold the minutes written so far.
    """
    totals, per_ad, column = _ROLLUP_SERIES[grain]
    rows = conn.execute(sa.text(f"""
        SELECT s.at, coalesce(a.clicks, 0)::bigint AS clicks
        FROM generate_series(
            greatest(:first, (SELECT min({column}) FROM {totals})),
            least(:last, date_trunc('{column}', (SELECT max(minute) FROM agg.minute_totals),
                                    'UTC')),
            make_interval(secs => :step)) AS s(at)
        LEFT JOIN {per_ad} a ON a.{column} = s.at AND a.ad_id = :ad_id
        ORDER BY s.at
    """), {"ad_id": ad_id, "first": to_datetime(first), "last": to_datetime(last),
           "step": grain})
    return [{column: iso(int(row.at.timestamp())), "clicks": int(row.clicks)} for row in rows]


_MINUTES_SQL = """
    SELECT minute, clicks, distinct_ads, revision, computed_at FROM agg.minute_totals
    WHERE minute BETWEEN :first AND :last ORDER BY minute
"""


def minutes(conn: sa.Connection, *, first: int, last: int) -> list[dict[str, Any]]:
    rows = conn.execute(sa.text(_MINUTES_SQL),
                        {"first": to_datetime(first), "last": to_datetime(last)})
    return [_minute_doc(row) for row in rows]


def minute(conn: sa.Connection, at: int) -> dict[str, Any] | None:
    found = minutes(conn, first=at, last=at)
    return found[0] if found else None


def ping(conn: sa.Connection) -> None:
    conn.execute(sa.text("SELECT 1 FROM agg.minute_totals LIMIT 1"))


def _minute_doc(row: Any) -> dict[str, Any]:
    return {
        "minute": iso(int(row.minute.timestamp())),
        "clicks": int(row.clicks),
        "distinct_ads": int(row.distinct_ads),
        "revision": int(row.revision),
        "computed_at": row.computed_at.isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
    }
