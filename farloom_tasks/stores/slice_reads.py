"""The query API's SQL over slices (agg.slice_values, agg.slice_minutes; migration 0012).

A value row holds the value's clicks and every ad of the value in ``ad_ids[]`` and
``ad_clicks[]``, ranked. A minute is closed for a slice once ``agg.slice_minutes``
has its row: slices are committed after the per-ad counts (docs/design.md §2.12), so
a minute closed in ``agg.minute_totals`` may not be closed for its slices yet, and
is then left out of a series rather than shown as 0. ``advertiser`` (not None)
restricts every sum to the ads the catalog gives that advertiser (as
stores/advertiser_reads.py does), so a key never counts another's ad.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from farloom_tasks.core.windows import MINUTE, iso, to_datetime
from farloom_tasks.stores.agg_reads import RankedAd

_OWN_ADS = "SELECT ad_id FROM agg.ads WHERE advertiser_id = :advertiser"


def _own(column: str, advertiser: str | None) -> str:
    return "" if advertiser is None else f"AND {column} IN ({_OWN_ADS})"


def last_closed_minute(conn: sa.Connection, slice_name: str) -> int | None:
    """The newest minute whose slice is written (what "now" means for a filtered read)."""
    value = conn.execute(sa.text("SELECT max(minute) FROM agg.slice_minutes WHERE slice = :s"),
                         {"s": slice_name}).scalar()
    return None if value is None else int(value.timestamp())


def top_ads(conn: sa.Connection, slice_name: str, value: str, *, first: int, last: int,
            n: int, advertiser: str | None) -> list[RankedAd]:
    """The exact top n ads of the value over minutes first..last: the value rows' arrays
    unnested, summed per ad, ranked as §2.5 says."""
    rows = conn.execute(sa.text(f"""
        SELECT u.ad_id, sum(u.clicks) AS clicks
        FROM agg.slice_values v, unnest(v.ad_ids, v.ad_clicks) AS u(ad_id, clicks)
        WHERE v.slice = :slice AND v.value = :value AND v.minute BETWEEN :first AND :last
              {_own("u.ad_id", advertiser)}
        GROUP BY u.ad_id ORDER BY clicks DESC, u.ad_id COLLATE "C" ASC LIMIT :n
    """), {"slice": slice_name, "value": value, "first": to_datetime(first),
           "last": to_datetime(last), "n": n, "advertiser": advertiser}).all()
    return [RankedAd(rank, row.ad_id, int(row.clicks)) for rank, row in enumerate(rows, 1)]


def trends(conn: sa.Connection, slice_name: str, value: str, ad_ids: Sequence[str], *,
           first: int, last: int) -> dict[str, list[int]]:
    """Each ad's clicks within the value in every minute of the range (0 where none)."""
    if not ad_ids:
        return {}
    width = (last - first) // MINUTE + 1
    series = {ad_id: [0] * width for ad_id in ad_ids}
    rows = conn.execute(sa.text("""
        SELECT v.minute, u.ad_id, u.clicks
        FROM agg.slice_values v, unnest(v.ad_ids, v.ad_clicks) AS u(ad_id, clicks)
        WHERE v.slice = :slice AND v.value = :value AND v.minute BETWEEN :first AND :last
              AND u.ad_id = ANY(:ids)
    """), {"slice": slice_name, "value": value, "ids": list(ad_ids),
           "first": to_datetime(first), "last": to_datetime(last)})
    for row in rows:
        series[row.ad_id][(int(row.minute.timestamp()) - first) // MINUTE] = int(row.clicks)
    return series


def ad_clicks(conn: sa.Connection, slice_name: str, value: str, ad_id: str, *, first: int,
              last: int) -> list[dict[str, Any]]:
    """The ad's clicks within the value per minute closed for the slice (0 without it)."""
    rows = conn.execute(sa.text("""
        SELECT m.minute, coalesce(v.ad_clicks[array_position(v.ad_ids, :ad_id)], 0) AS clicks
        FROM agg.slice_minutes m
        LEFT JOIN agg.slice_values v
               ON v.slice = m.slice AND v.value = :value AND v.minute = m.minute
        WHERE m.slice = :slice AND m.minute BETWEEN :first AND :last
        ORDER BY m.minute
    """), {"slice": slice_name, "value": value, "ad_id": ad_id, "first": to_datetime(first),
           "last": to_datetime(last)})
    return [{"minute": iso(int(row.minute.timestamp())), "clicks": int(row.clicks)}
            for row in rows]


def value_clicks(conn: sa.Connection, slice_name: str, value: str, *, first: int, last: int,
                 advertiser: str | None) -> list[dict[str, Any]]:
    """The value's clicks per minute closed for the slice (0 without a row); with an
    advertiser, only its own ads' clicks within the value."""
    if advertiser is None:
        clicks = "coalesce(v.clicks, 0)"
    else:
        clicks = (f"coalesce((SELECT sum(u.clicks) FROM unnest(v.ad_ids, v.ad_clicks) "
                  f"AS u(ad_id, clicks) WHERE true {_own('u.ad_id', advertiser)}), 0)")
    rows = conn.execute(sa.text(f"""
        SELECT m.minute, {clicks} AS clicks
        FROM agg.slice_minutes m
        LEFT JOIN agg.slice_values v
               ON v.slice = m.slice AND v.value = :value AND v.minute = m.minute
        WHERE m.slice = :slice AND m.minute BETWEEN :first AND :last
        ORDER BY m.minute
    """), {"slice": slice_name, "value": value, "first": to_datetime(first),
           "last": to_datetime(last), "advertiser": advertiser})
    return [{"minute": iso(int(row.minute.timestamp())), "clicks": int(row.clicks)}
            for row in rows]


def campaign_known(conn: sa.Connection, campaign_id: str, advertiser: str | None) -> bool:
    """Whether the catalog has an ad of the campaign (of the advertiser's, with one)."""
    return conn.execute(sa.text(
        f"SELECT 1 FROM agg.ads WHERE campaign_id = :campaign {_own('ad_id', advertiser)} "
        "LIMIT 1"), {"campaign": campaign_id, "advertiser": advertiser}).first() is not None


def advertiser_known(conn: sa.Connection, advertiser_id: str) -> bool:
    return conn.execute(sa.text("SELECT 1 FROM agg.ads WHERE advertiser_id = :a LIMIT 1"),
                        {"a": advertiser_id}).first() is not None
