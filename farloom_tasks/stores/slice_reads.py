"""The query API's SQL over slices: their minutes (migration 0012) and rollups (0013).

A minute's value row (``agg.slice_values``) holds the value's clicks and every ad of
the value in ``ad_ids[]`` and ``ad_clicks[]``, ranked. The rollups hold, per (slice,
value, hour|day), each ad's clicks (``agg.slice_ad_clicks_per_hour``/``_per_day``)
and the value's (``agg.slice_totals_per_hour``/``_per_day``), each the sum of the
minute rows it covers at every commit (docs/design.md §3.1), so a window tiled by
core.tiling sums to what its minutes would: whole days and hours from the rollups,
edge minutes from the arrays, exactly as stores/agg_reads.py does unfiltered. A
filtered top reads each of those tiles by its ranked head first (core.ranked_heads).

A minute is closed for a slice once ``agg.slice_minutes`` has its row: slices are
committed after the per-ad counts (docs/design.md §2.12), so a minute closed in
``agg.minute_totals`` may not be closed for its slices yet, and is then left out of
a series rather than shown as 0. ``advertiser`` (not None) restricts every sum to
the ads the catalog gives that advertiser (as stores/advertiser_reads.py does), so a
key never counts another's ad.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from farloom_tasks.core.partitions import DAY, HOUR
from farloom_tasks.core.ranked_heads import Head, settled
from farloom_tasks.core.tiling import Run, tile_built
from farloom_tasks.core.windows import MINUTE, iso, to_datetime
from farloom_tasks.stores.agg_reads import RankedAd

_OWN_ADS = "SELECT ad_id FROM agg.ads WHERE advertiser_id = :advertiser"

# Each grain's per-(value, ad) rollup and per-value totals, and their time column.
# Both are keyed (slice, value, period, ...) INCLUDE (clicks): one value's range of
# periods is an index-only range scan.
_AD_ROLLUPS = {HOUR: ("agg.slice_ad_clicks_per_hour", "hour"),
               DAY: ("agg.slice_ad_clicks_per_day", "day")}
_TOTAL_ROLLUPS = {HOUR: ("agg.slice_totals_per_hour", "hour"),
                  DAY: ("agg.slice_totals_per_day", "day")}


def _own(column: str, advertiser: str | None) -> str:
    return "" if advertiser is None else f"AND {column} IN ({_OWN_ADS})"


def last_closed_minute(conn: sa.Connection, slice_name: str) -> int | None:
    """The newest minute whose slice is written (what "now" means for a filtered read)."""
    value = conn.execute(sa.text("SELECT max(minute) FROM agg.slice_minutes WHERE slice = :s"),
                         {"s": slice_name}).scalar()
    return None if value is None else int(value.timestamp())


def _top_branch(i: int, run: Run, advertiser: str | None) -> str:
    """One run's (ad_id, clicks) rows of the value: the minutes' arrays unnested, or
    the hour or day rollup's rows. int4 as in agg_reads._top_sql: sum() then adds in
    int8, not numeric (an ad's clicks in one value and day are far below 2^31)."""
    if run.grain == MINUTE:
        return ("SELECT u.ad_id, u.clicks::int4 AS clicks FROM agg.slice_values v, "
                "unnest(v.ad_ids, v.ad_clicks) AS u(ad_id, clicks) "
                f"WHERE v.slice = :slice AND v.value = :value AND v.minute >= :start{i} "
                f"AND v.minute < :end{i} {_own('u.ad_id', advertiser)}")
    table, column = _AD_ROLLUPS[run.grain]
    return (f"SELECT ad_id, clicks::int4 AS clicks FROM {table} "
            f"WHERE slice = :slice AND value = :value AND {column} >= :start{i} "
            f"AND {column} < :end{i} {_own('ad_id', advertiser)}")


def head_depths(n: int) -> tuple[int, ...]:
    """How deep into each tile's ranked rows (a minute's arrays, a built period's
    ranked index) a top of n reads before it reads them whole: deep enough that a
    skewed value settles at once (docs/benchmarks.md, "Filtered reads"), deeper once,
    then everything."""
    return (max(1000, 10 * n), max(8000, 80 * n))


def _period_heads(i: int, run: Run) -> str:
    """Each built hour or day of the run as one tile's head: its first :depth + 1
    rows in rank order (index slice_ad_clicks_per_{hour,day}_ranked, migration 0013,
    so an index-only scan of that many rows), as arrays shaped like a minute's."""
    table, column = _AD_ROLLUPS[run.grain]
    return f"""
            SELECT r.ids, r.clicks
            FROM generate_series(:start{i}, :end{i} - make_interval(secs => {run.grain}),
                                 make_interval(secs => {run.grain})) AS p(at),
            LATERAL (
                SELECT array_agg(t.ad_id ORDER BY t.clicks DESC, t.ad_id) AS ids,
                       array_agg(t.clicks ORDER BY t.clicks DESC, t.ad_id) AS clicks
                FROM (SELECT ad_id, clicks FROM {table}
                      WHERE slice = :slice AND value = :value AND {column} = p.at
                      ORDER BY clicks DESC, ad_id LIMIT :depth + 1) AS t
            ) AS r"""


def _heads_sql(runs: Sequence[Run]) -> str:
    """The first :depth ads of every tile (each edge minute's arrays, each built hour's
    and day's ranked rows) and the tile's bound, summed per ad with its missing bound
    (core.ranked_heads), the top :n by partial, and the bounds the decision needs, in
    one statement. A period without rows for the value is a tile with no head and
    bound 0 (array_agg over nothing is NULL)."""
    ranked = []
    minutes = " OR ".join(f"(v.minute >= :start{i} AND v.minute < :end{i})"
                          for i, run in enumerate(runs) if run.grain == MINUTE)
    if minutes:
        ranked.append("SELECT v.ad_ids AS ids, v.ad_clicks AS clicks FROM agg.slice_values v "
                      f"WHERE v.slice = :slice AND v.value = :value AND ({minutes})")
    ranked += [_period_heads(i, run) for i, run in enumerate(runs) if run.grain != MINUTE]
    return f"""
        WITH heads AS MATERIALIZED (
            SELECT ranked.ids[1:(:depth)] AS ids, ranked.clicks[1:(:depth)] AS clicks,
                   coalesce(ranked.clicks[:depth + 1], 0) AS bound
            FROM ({' UNION ALL '.join(ranked)}) AS ranked
        ), unseen AS (
            SELECT coalesce(sum(bound), 0) AS bound FROM heads
        ), tiles AS (
            SELECT u.ad_id, u.clicks::int4 AS clicks, h.bound
            FROM heads h, unnest(h.ids, h.clicks) AS u(ad_id, clicks)
        ), per_ad AS (
            SELECT ad_id, sum(clicks) AS partial,
                   (SELECT bound FROM unseen) - sum(bound) AS missing,
                   row_number() OVER (ORDER BY sum(clicks) DESC, ad_id COLLATE "C") AS rank
            FROM tiles GROUP BY ad_id
        )
        SELECT ad_id, partial, missing,
               (SELECT max(partial + missing) FROM per_ad WHERE rank > :n AND missing > 0)
                   AS other_upper,
               (SELECT bound FROM unseen) AS unseen
        FROM per_ad WHERE rank <= :n ORDER BY rank"""


def _tiles(runs: Sequence[Run]) -> int:
    return sum(run.units for run in runs)


def top_ads_tiled(conn: sa.Connection, slice_name: str, value: str, runs: Sequence[Run], *,
                  n: int, advertiser: str | None) -> list[RankedAd]:
    """The exact top n ads of the value over the window the runs tile (core.tiling.tile):
    every run's rows (UNION ALL) summed per ad, ranked as §2.5 says, limited.

    Every tile, an edge minute or a built hour or day, is first read by its head only
    (core.ranked_heads), which settles a skewed value's top from a small part of its
    rows; when the heads do not settle it, deeper heads, then every row. A window of
    one tile is its first n rows in rank order, exact without a decision. With an
    advertiser the tiles' order is not that of its own ads, so its top reads them
    whole."""
    if not runs:
        return []
    params: dict[str, Any] = {"slice": slice_name, "value": value, "n": n,
                              "advertiser": advertiser}
    for i, run in enumerate(runs):
        params[f"start{i}"] = to_datetime(run.start)
        params[f"end{i}"] = to_datetime(run.end)
    if advertiser is None:
        statement = sa.text(_heads_sql(runs))
        # One tile: its first n in rank order are its top n, whatever follows them.
        depths = (n,) if _tiles(runs) == 1 else head_depths(n)
        for depth in depths:
            found = conn.execute(statement, {**params, "depth": depth}).all()
            top = [Head(row.ad_id, int(row.partial), int(row.missing)) for row in found]
            other_upper = None if not found or found[0].other_upper is None else int(
                found[0].other_upper)
            unseen = int(found[0].unseen) if found else 0
            if len(depths) == 1 or settled(top, n, other_upper=other_upper, unseen=unseen):
                return [RankedAd(rank, head.ad_id, head.partial)
                        for rank, head in enumerate(top, 1)]
    branches = " UNION ALL ".join(_top_branch(i, run, advertiser) for i, run in enumerate(runs))
    rows = conn.execute(sa.text(
        f"SELECT ad_id, sum(clicks) AS clicks FROM ({branches}) AS tiles "
        'GROUP BY ad_id ORDER BY clicks DESC, ad_id COLLATE "C" ASC LIMIT :n'), params).all()
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


def _built(grain: str, at: str) -> str:
    """Whether the slice's ``grain`` starting at ``at`` is built: its rollup rows exist,
    equal to its minutes, only then (agg.slice_rollup_periods; migration 0013)."""
    return (f"EXISTS (SELECT 1 FROM agg.slice_rollup_periods b WHERE b.grain = '{grain}' "
            f"AND b.period = {at} AND b.slice = :slice)")


def built_tiling(conn: sa.Connection, slice_name: str, start: int, end: int) -> list[Run]:
    """core.tiling.tile_built for the slice over [start, end): whole days and hours only
    where the slice's rollup of them is built, their minutes (or hours) where not."""
    rows = conn.execute(sa.text("""
        SELECT grain, extract(epoch FROM period)::bigint AS at FROM agg.slice_rollup_periods
        WHERE slice = :slice AND period >= :start AND period < :end
    """), {"slice": slice_name, "start": to_datetime(start), "end": to_datetime(end)}).all()
    return tile_built(start, end, frozenset(int(r.at) for r in rows if r.grain == "hour"),
                      frozenset(int(r.at) for r in rows if r.grain == "day"))


@dataclass(frozen=True)
class _PeriodSums:
    """SQL for one series' clicks: of an hour or day row at ``{at}``, and of the minutes
    in [{lo}, {hi}) (to be restricted to those of hours not built)."""

    hour_row: str
    day_row: str
    minutes: str


def _period_clicks(grain: int, sums: _PeriodSums) -> str:
    """A period's clicks exactly as its tiling reads them: a built day from its row; else
    its built hours from theirs and the minutes of the others (an hour likewise)."""
    unbuilt_minutes = sums.minutes.format(lo="s.at", hi=f"s.at + interval '1 {_NAMES[grain]}'")
    if grain == HOUR:
        return (f"CASE WHEN {_built('hour', 's.at')} "
                f"THEN coalesce({sums.hour_row.format(at='s.at')}, 0) "
                f"ELSE coalesce({unbuilt_minutes}, 0) END")
    hours = (f"(SELECT sum({sums.hour_row.format(at='g.h')}) FROM generate_series(s.at, "
             f"s.at + interval '23 hours', interval '1 hour') AS g(h) "
             f"WHERE {_built('hour', 'g.h')})")
    return (f"CASE WHEN {_built('day', 's.at')} "
            f"THEN coalesce({sums.day_row.format(at='s.at')}, 0) "
            f"ELSE coalesce({hours}, 0) + coalesce({unbuilt_minutes}, 0) END")


_NAMES = {HOUR: "hour", DAY: "day"}
# Minutes of hours not built (a built hour's minutes are in its row).
_UNBUILT_HOUR = _built("hour", "date_trunc('hour', v.minute, 'UTC')")


def _periods_sql(grain: int) -> str:
    """Every hour (day) of :first..:last from the value's first one (its first rollup
    row, or its first minute row) through the one holding the slice's newest written
    minute. Before the value's first period the slice may not have existed (slices
    came after the per-ad counts), so those are left out rather than shown as 0; a
    value without any row starts at :first (greatest() and least() pass over NULL)."""
    table, column = _TOTAL_ROLLUPS[grain]
    return f"""
        generate_series(
            greatest(:first, least(
                (SELECT min({column}) FROM {table} WHERE slice = :slice AND value = :value),
                date_trunc('{column}', (SELECT min(minute) FROM agg.slice_values
                                        WHERE slice = :slice AND value = :value), 'UTC'))),
            least(:last, date_trunc('{column}', (SELECT max(minute) FROM agg.slice_minutes
                                                 WHERE slice = :slice), 'UTC')),
            make_interval(secs => :step)) AS s(at)"""


def ad_clicks_rolled_up(conn: sa.Connection, slice_name: str, value: str, ad_id: str,
                        grain: int, *, first: int, last: int) -> list[dict[str, Any]]:
    """The ad's clicks within the value per hour or day (``grain``) of first..last, both
    aligned to it, 0 where it had none: a built period's rollup row (one exists only
    with clicks), an unbuilt one's built hours and minutes. The current hour and day
    hold the minutes written so far."""
    sums = _PeriodSums(
        hour_row=("(SELECT a.clicks FROM agg.slice_ad_clicks_per_hour a WHERE a.slice = :slice "
                  "AND a.value = :value AND a.hour = {at} AND a.ad_id = :ad_id)"),
        day_row=("(SELECT a.clicks FROM agg.slice_ad_clicks_per_day a WHERE a.slice = :slice "
                 "AND a.value = :value AND a.day = {at} AND a.ad_id = :ad_id)"),
        minutes=("(SELECT sum(v.ad_clicks[array_position(v.ad_ids, :ad_id)]) "
                 "FROM agg.slice_values v WHERE v.slice = :slice AND v.value = :value "
                 "AND v.minute >= {lo} AND v.minute < {hi} AND NOT " + _UNBUILT_HOUR + ")"))
    column = _NAMES[grain]
    rows = conn.execute(sa.text(f"""
        SELECT s.at, ({_period_clicks(grain, sums)})::bigint AS clicks
        FROM {_periods_sql(grain)}
        ORDER BY s.at
    """), {"slice": slice_name, "value": value, "ad_id": ad_id, "first": to_datetime(first),
           "last": to_datetime(last), "step": grain})
    return [{column: iso(int(row.at.timestamp())), "clicks": int(row.clicks)} for row in rows]


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


def value_clicks_rolled_up(conn: sa.Connection, slice_name: str, value: str, grain: int, *,
                           first: int, last: int,
                           advertiser: str | None) -> list[dict[str, Any]]:
    """The value's clicks per hour or day of first..last (0 without any), as
    ad_clicks_rolled_up reads periods: built ones from the totals rollup, or with an
    advertiser from the sum of its own ads' rows in the per-ad one."""
    if advertiser is None:
        sums = _PeriodSums(
            hour_row=("(SELECT t.clicks FROM agg.slice_totals_per_hour t WHERE t.slice = :slice "
                      "AND t.value = :value AND t.hour = {at})"),
            day_row=("(SELECT t.clicks FROM agg.slice_totals_per_day t WHERE t.slice = :slice "
                     "AND t.value = :value AND t.day = {at})"),
            minutes=("(SELECT sum(v.clicks) FROM agg.slice_values v WHERE v.slice = :slice "
                     "AND v.value = :value AND v.minute >= {lo} AND v.minute < {hi} "
                     "AND NOT " + _UNBUILT_HOUR + ")"))
    else:
        own = _own("a.ad_id", advertiser)
        sums = _PeriodSums(
            hour_row=("(SELECT sum(a.clicks) FROM agg.slice_ad_clicks_per_hour a "
                      "WHERE a.slice = :slice AND a.value = :value AND a.hour = {at} "
                      + own + ")"),
            day_row=("(SELECT sum(a.clicks) FROM agg.slice_ad_clicks_per_day a "
                     "WHERE a.slice = :slice AND a.value = :value AND a.day = {at} "
                     + own + ")"),
            minutes=("(SELECT sum(a.clicks) FROM agg.slice_values v, "
                     "unnest(v.ad_ids, v.ad_clicks) AS a(ad_id, clicks) "
                     "WHERE v.slice = :slice AND v.value = :value AND v.minute >= {lo} "
                     "AND v.minute < {hi} AND NOT " + _UNBUILT_HOUR + " " + own + ")"))
    column = _NAMES[grain]
    rows = conn.execute(sa.text(f"""
        SELECT s.at, ({_period_clicks(grain, sums)})::bigint AS clicks
        FROM {_periods_sql(grain)}
        ORDER BY s.at
    """), {"slice": slice_name, "value": value, "first": to_datetime(first),
           "last": to_datetime(last), "step": grain, "advertiser": advertiser})
    return [{column: iso(int(row.at.timestamp())), "clicks": int(row.clicks)} for row in rows]


def campaign_known(conn: sa.Connection, campaign_id: str, advertiser: str | None) -> bool:
    """Whether the catalog has an ad of the campaign (of the advertiser's, with one)."""
    return conn.execute(sa.text(
        f"SELECT 1 FROM agg.ads WHERE campaign_id = :campaign {_own('ad_id', advertiser)} "
        "LIMIT 1"), {"campaign": campaign_id, "advertiser": advertiser}).first() is not None


def advertiser_known(conn: sa.Connection, advertiser_id: str) -> bool:
    return conn.execute(sa.text("SELECT 1 FROM agg.ads WHERE advertiser_id = :a LIMIT 1"),
                        {"a": advertiser_id}).first() is not None
