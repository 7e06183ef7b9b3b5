"""Hour and day rollups of ``agg.ad_clicks_per_minute`` (adapter): keep, check, repair.

``agg.ad_clicks_per_hour`` / ``agg.ad_clicks_per_day`` hold, per UTC hour and day
and per ad, the sum of the per-minute rows they cover; ``agg.hour_totals`` /
``agg.day_totals`` the sum of all of them. The invariant, true at every commit:
each rollup row equals the sum of its minute rows (for minutes whose partition
minute retention has not dropped; the rollups outlive those, unchanged).

Kept by difference. Every statement of the aggregated writer (stores/agg.py)
that changes a minute's per-ad rows is one CTE chain that ends in
``with_rollups``: the change's ``RETURNING`` gives, per ad, the new count minus
the old, and the same statement adds those differences to the hour rows, the
day rows, the hour total and the day total, in that order and each sorted by
ad id, so that writers of the same hour or day lock rollup rows in one order and
cannot deadlock. A row whose clicks fall to 0 is deleted (``drop_zeros``, a
second statement, only when one did): a rollup row exists only with clicks, as a
minute's per-ad row does, and readers need no filter. Checks treat a row of 0
as no row.

Checked and repaired by reconciliation (pipeline/reconcile.py): ``compare`` is
one statement, so one snapshot, in which rollups and minutes always agree
unless something other than the writer changed them; ``repair`` recomputes one
hour or day from its minute rows while holding the rows lock of every minute it
covers (stores/minute_locks.py), so that no writer changes them meanwhile.
An hour or day is checked and repaired only while every partition of
``agg.ad_clicks_per_minute`` overlapping it is still attached: once minute
retention dropped one, its minutes are gone and the rollup is the only record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from farloom_tasks.core.partitions import DAY, HOUR, start_of
from farloom_tasks.core.reconciliation import RollupFinding
from farloom_tasks.stores.minute_locks import lock_rows_exclusively
from farloom_tasks.stores.partitions import MINUTE_COUNTS, attached_throughout_sql

GRAINS = {"hour": HOUR, "day": DAY}

# Appended to a WITH list that defines delta(ad_id, clicks): the change of one
# minute (%(m)s, epoch seconds) per ad. Each step's one-time filter on the step
# before makes it run to completion first, whatever plan PostgreSQL picks: the
# lock order is hour rows, day rows, hour total, day total.
_ROLLUP_STEPS = """
, changed AS MATERIALIZED (
    SELECT ad_id, clicks FROM delta WHERE clicks <> 0
), hour_rows AS (
    INSERT INTO agg.ad_clicks_per_hour AS t (hour, ad_id, clicks)
    SELECT date_trunc('hour', to_timestamp(%(m)s), 'UTC'), ad_id, clicks FROM changed
    ORDER BY ad_id COLLATE "C"
    ON CONFLICT (hour, ad_id) DO UPDATE SET clicks = t.clicks + excluded.clicks
    RETURNING ad_id, clicks
), day_rows AS (
    INSERT INTO agg.ad_clicks_per_day AS t (day, ad_id, clicks)
    SELECT date_trunc('day', to_timestamp(%(m)s), 'UTC'), ad_id, clicks FROM changed
    WHERE (SELECT count(*) FROM hour_rows) >= 0
    ORDER BY ad_id COLLATE "C"
    ON CONFLICT (day, ad_id) DO UPDATE SET clicks = t.clicks + excluded.clicks
    RETURNING ad_id, clicks
), hour_total AS (
    INSERT INTO agg.hour_totals AS t (hour, clicks)
    SELECT date_trunc('hour', to_timestamp(%(m)s), 'UTC'), sum(clicks) FROM changed
    HAVING sum(clicks) <> 0 AND (SELECT count(*) FROM day_rows) >= 0
    ON CONFLICT (hour) DO UPDATE SET clicks = t.clicks + excluded.clicks
    RETURNING clicks
), day_total AS (
    INSERT INTO agg.day_totals AS t (day, clicks)
    SELECT date_trunc('day', to_timestamp(%(m)s), 'UTC'), sum(clicks) FROM changed
    HAVING sum(clicks) <> 0 AND (SELECT count(*) FROM hour_total) >= 0
    ON CONFLICT (day) DO UPDATE SET clicks = t.clicks + excluded.clicks
    RETURNING clicks
)
SELECT (SELECT array_agg(ad_id) FROM hour_rows WHERE clicks = 0),
       (SELECT array_agg(ad_id) FROM day_rows WHERE clicks = 0),
       coalesce((SELECT bool_or(clicks = 0) FROM hour_total), false)
       OR coalesce((SELECT bool_or(clicks = 0) FROM day_total), false)
"""

_DROP_ZEROS = """
DELETE FROM agg.ad_clicks_per_hour
WHERE hour = date_trunc('hour', to_timestamp(%(m)s), 'UTC')
  AND ad_id = ANY(%(hour_ads)s::text[]) AND clicks = 0;
DELETE FROM agg.ad_clicks_per_day
WHERE day = date_trunc('day', to_timestamp(%(m)s), 'UTC')
  AND ad_id = ANY(%(day_ads)s::text[]) AND clicks = 0;
DELETE FROM agg.hour_totals WHERE hour = date_trunc('hour', to_timestamp(%(m)s), 'UTC')
  AND clicks = 0;
DELETE FROM agg.day_totals WHERE day = date_trunc('day', to_timestamp(%(m)s), 'UTC')
  AND clicks = 0
"""


def with_rollups(changes: str, *extra_columns: str) -> str:
    """One statement: ``changes`` (a WITH list defining ``delta(ad_id, clicks)``, the
    minute's change per ad), then the same change applied to the rollups.

    Parameters: ``%(m)s``, the minute, plus whatever ``changes`` uses. The result
    is one row: what ``drop_zeros`` takes (three columns), then ``extra_columns``
    (expressions over the CTEs of ``changes``).
    """
    select_extra = "".join(f", ({column})" for column in extra_columns)
    return "WITH " + changes + _ROLLUP_STEPS + select_extra


def drop_zeros(cursor: Any, minute: int, row: Sequence[Any]) -> None:
    """Delete the rollup rows that ``row`` (a ``with_rollups`` result) says fell to 0."""
    hour_ads, day_ads, total_zero = row[0], row[1], row[2]
    if hour_ads or day_ads or total_zero:
        cursor.execute(_DROP_ZEROS, {"m": minute, "hour_ads": list(hour_ads or []),
                                     "day_ads": list(day_ads or [])})


_RETAINED = attached_throughout_sql(MINUTE_COUNTS)


def _compare_sql(grain: str) -> str:
    return f"""
WITH periods AS (
    SELECT p AS period FROM generate_series(to_timestamp(%(lo)s), to_timestamp(%(hi)s - 1),
                                            make_interval(secs => %(step)s)) AS p
), checkable AS (
    SELECT period FROM periods
    WHERE {_RETAINED.format(lo="period", hi="period + make_interval(secs => %(step)s)")}
), minutes AS (
    SELECT date_trunc('{grain}', minute, 'UTC') AS period, ad_id, sum(clicks) AS clicks
    FROM agg.ad_clicks_per_minute
    WHERE minute >= to_timestamp(%(lo)s) AND minute < to_timestamp(%(hi)s)
    GROUP BY 1, 2 HAVING sum(clicks) <> 0
), rolled AS (
    SELECT {grain} AS period, ad_id, clicks FROM agg.ad_clicks_per_{grain}
    WHERE {grain} >= to_timestamp(%(lo)s) AND {grain} < to_timestamp(%(hi)s) AND clicks <> 0
), per_ad AS (
    SELECT period, coalesce(sum(m.clicks), 0) AS minute_clicks,
           count(*) FILTER (WHERE m.clicks IS DISTINCT FROM r.clicks) AS differing_ads
    FROM minutes m FULL JOIN rolled r USING (period, ad_id)
    GROUP BY period
)
SELECT extract(epoch FROM c.period)::bigint, nullif(t.clicks, 0),
       coalesce(a.minute_clicks, 0), coalesce(a.differing_ads, 0)
FROM checkable c
LEFT JOIN per_ad a USING (period)
LEFT JOIN agg.{grain}_totals t ON t.{grain} = c.period
ORDER BY 1
"""


_COMPARE = {grain: _compare_sql(grain) for grain in GRAINS}


def compare(cursor: Any, start: int, end: int) -> list[RollupFinding]:
    """Every checkable hour, then day, that [start, end] (minutes) touches, each against
    its minutes: hours in one statement, days in another (each one snapshot)."""
    found: list[RollupFinding] = []
    for grain, step in GRAINS.items():
        cursor.execute(_COMPARE[grain], {"lo": start_of(start, step),
                                         "hi": start_of(end, step) + step, "step": step})
        found += [RollupFinding(grain, int(period), None if rolled is None else int(rolled),
                                int(summed), int(differing))
                  for period, rolled, summed, differing in cursor.fetchall()]
    return found


def _repair_sql(grain: str) -> str:
    lo, hi = "to_timestamp(%(lo)s)", "to_timestamp(%(hi)s)"
    return f"""
WITH checkable AS (
    SELECT {_RETAINED.format(lo=lo, hi=hi)} AS ok
), fresh AS (
    SELECT ad_id, sum(clicks) AS clicks FROM agg.ad_clicks_per_minute
    WHERE minute >= {lo} AND minute < {hi} GROUP BY ad_id HAVING sum(clicks) <> 0
), current_rows AS (
    SELECT ad_id, clicks FROM agg.ad_clicks_per_{grain} WHERE {grain} = {lo}
), wrong AS MATERIALIZED (
    SELECT ad_id, f.clicks AS clicks FROM fresh f FULL JOIN current_rows c USING (ad_id)
    WHERE f.clicks IS DISTINCT FROM nullif(c.clicks, 0) AND (SELECT ok FROM checkable)
), removed AS (
    DELETE FROM agg.ad_clicks_per_{grain} t USING wrong w
    WHERE t.{grain} = {lo} AND t.ad_id = w.ad_id AND w.clicks IS NULL
    RETURNING 1
), rewritten AS (
    INSERT INTO agg.ad_clicks_per_{grain} AS t ({grain}, ad_id, clicks)
    SELECT {lo}, ad_id, clicks FROM wrong WHERE clicks IS NOT NULL ORDER BY ad_id COLLATE "C"
    ON CONFLICT ({grain}, ad_id) DO UPDATE SET clicks = excluded.clicks
    RETURNING 1
), total AS (
    SELECT sum(clicks) AS clicks FROM fresh
), total_removed AS (
    DELETE FROM agg.{grain}_totals
    WHERE {grain} = {lo} AND (SELECT clicks FROM total) IS NULL AND (SELECT ok FROM checkable)
    RETURNING 1
), total_rewritten AS (
    INSERT INTO agg.{grain}_totals AS t ({grain}, clicks)
    SELECT {lo}, clicks FROM total WHERE clicks IS NOT NULL AND (SELECT ok FROM checkable)
    ON CONFLICT ({grain}) DO UPDATE SET clicks = excluded.clicks
    WHERE t.clicks <> excluded.clicks
    RETURNING 1
)
SELECT (SELECT ok FROM checkable),
       (SELECT count(*) FROM removed) + (SELECT count(*) FROM rewritten)
       + (SELECT count(*) FROM total_removed) + (SELECT count(*) FROM total_rewritten)
"""


_REPAIR = {grain: _repair_sql(grain) for grain in GRAINS}


def repair(cursor: Any, grain: str, period: int) -> int | None:
    """Recompute one hour or day (``period``, its start) from its minute rows.

    Takes the rows lock of each of its minutes first (so run it in a transaction
    of its own, and commit promptly: writers of those minutes wait). Returns how
    many rollup rows it rewrote or deleted, or None if the period is no longer
    checkable (minute retention dropped some of its minutes meanwhile).
    """
    step = GRAINS[grain]
    lock_rows_exclusively(cursor, range(period, period + step, 60))
    cursor.execute(_REPAIR[grain], {"lo": period, "hi": period + step})
    ok, rewritten = cursor.fetchone()
    return int(rewritten) if ok else None
