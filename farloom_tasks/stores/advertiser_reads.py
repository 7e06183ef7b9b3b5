"""The query API's SQL for an advertiser's key: its own ads only, through agg.ads.

An ad belongs to an advertiser through the ads catalog ``agg.ads`` (migration
0010). Each statement here is its agg_reads twin restricted to the advertiser's
ads, so an admin key and the open mode keep agg_reads' statements (and plans)
unchanged. As there, rows of a revision being written count (docs/design.md §2.10).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from farloom_tasks.core.tiling import Run
from farloom_tasks.core.windows import to_datetime
from farloom_tasks.stores.agg_reads import _PER_AD, RankedAd, _minute_doc

# The advertiser's ads; `ads_by_advertiser (advertiser_id, ad_id)` makes it an
# index-only scan.
_OWN_ADS = "SELECT ad_id FROM agg.ads WHERE advertiser_id = :advertiser"


def owns_ad(conn: sa.Connection, advertiser_id: str, ad_id: str) -> bool:
    """Whether the catalog lists ``ad_id`` as the advertiser's (False for an unknown ad)."""
    return conn.execute(sa.text(
        "SELECT 1 FROM agg.ads WHERE ad_id = :ad_id AND advertiser_id = :advertiser"),
        {"ad_id": ad_id, "advertiser": advertiser_id}).first() is not None


def _top_sql(runs: Sequence[Run]) -> str:
    """agg_reads._top_sql with each run's rows restricted to the advertiser's ads."""
    branches = []
    for i, run in enumerate(runs):
        table, column = _PER_AD[run.grain]
        branches.append(f"SELECT ad_id, clicks::int4 AS clicks FROM {table} "
                        f"WHERE {column} >= :start{i} AND {column} < :end{i} "
                        f"AND ad_id IN ({_OWN_ADS})")
    return (f"SELECT ad_id, sum(clicks) AS clicks FROM ({' UNION ALL '.join(branches)}) AS tiles "
            'GROUP BY ad_id ORDER BY clicks DESC, ad_id COLLATE "C" ASC LIMIT :n')


def top_ads_tiled(conn: sa.Connection, advertiser_id: str, runs: Sequence[Run], *,
                  n: int) -> list[RankedAd]:
    """The exact top n of the advertiser's ads over the window the runs tile."""
    if not runs:
        return []
    params: dict[str, Any] = {"n": n, "advertiser": advertiser_id}
    for i, run in enumerate(runs):
        params[f"start{i}"] = to_datetime(run.start)
        params[f"end{i}"] = to_datetime(run.end)
    rows = conn.execute(sa.text(_top_sql(runs)), params).all()
    return [RankedAd(rank, row.ad_id, int(row.clicks)) for rank, row in enumerate(rows, 1)]


# Every closed minute of the range, with the advertiser's clicks in it (the sum of its
# ads' per-minute rows, 0 when none clicked) and how many of its ads had clicks. The
# revision and computed_at are the minute's: they say when the numbers last changed.
_MINUTES_SQL = f"""
    SELECT t.minute, coalesce(own.clicks, 0) AS clicks, coalesce(own.ads, 0) AS distinct_ads,
           t.revision, t.computed_at
    FROM agg.minute_totals t
    LEFT JOIN (
        SELECT minute, sum(clicks) AS clicks, count(*) AS ads
        FROM agg.ad_clicks_per_minute
        WHERE minute BETWEEN :first AND :last AND ad_id IN ({_OWN_ADS})
        GROUP BY minute
    ) AS own ON own.minute = t.minute
    WHERE t.minute BETWEEN :first AND :last
    ORDER BY t.minute
"""


def minutes(conn: sa.Connection, advertiser_id: str, *, first: int,
            last: int) -> list[dict[str, Any]]:
    rows = conn.execute(sa.text(_MINUTES_SQL), {
        "advertiser": advertiser_id, "first": to_datetime(first), "last": to_datetime(last)})
    return [_minute_doc(row) for row in rows]


def minute(conn: sa.Connection, advertiser_id: str, at: int) -> dict[str, Any] | None:
    found = minutes(conn, advertiser_id, first=at, last=at)
    return found[0] if found else None
