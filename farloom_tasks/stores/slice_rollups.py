"""Hour and day rollups of the slices (adapter): keep, check, repair.

``agg.slice_ad_clicks_per_hour`` / ``_per_day`` hold, per (slice, value, UTC hour
or day, ad), the ad's clicks in that value summed over the ``agg.slice_values``
minutes the period covers; ``agg.slice_totals_per_hour`` / ``_per_day`` the
value's clicks (migration 0013). The invariant, true at every commit, is the one
of the per-ad rollups (stores/rollups.py): each row equals the sum of its minutes,
for minutes whose ``agg.slice_values`` partition minute retention has not dropped
(the rollups outlive those, unchanged). A row exists only with clicks.

Kept by difference, in the statement of the slice writer (stores/slices.py) that
replaces a minute's slice rows: its ``DELETE ... RETURNING`` gives the old arrays,
its ``INSERT ... RETURNING`` the new ones; ``WRITER_STEPS`` unnests both, sums
new minus old per (slice, value, ad) and adds that to the hour rows, the day rows,
the hour totals and the day totals, in that order and each sorted by key, so that
writers of two minutes of one hour lock rollup rows in one order and cannot
deadlock. Rows that fell to 0 are deleted by a second statement (``drop_zeros``),
sent only when one did.

Checked and repaired by reconciliation (pipeline/reconcile.py) per (grain,
period, slice): ``compare`` is one statement per grain, so one snapshot, in which
rollups and minutes agree unless something other than the writer changed them;
``repair`` recomputes one (grain, period, slice) from ``agg.slice_values`` while
holding the slices lock of every minute the period covers. Only periods whose
``agg.slice_values`` partitions are all still attached are checked or repaired.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from farloom_tasks.core.partitions import DAY, HOUR, start_of
from farloom_tasks.core.reconciliation import SliceRollupFinding
from farloom_tasks.stores.minute_locks import lock_slices_exclusively

GRAINS = {"hour": HOUR, "day": DAY}
_KEY = 'slice COLLATE "C", value COLLATE "C"'

# Appended to a WITH list that defines old_rows and new_rows, each (slice, value,
# ad_ids, ad_clicks): the minute's (%(m)s, epoch seconds) slice rows before and
# after. As in stores/rollups.py, each step's one-time filter on the step before
# makes it run to completion first: the lock order is hour rows, day rows, hour
# totals, day totals, each in key order.
#
# A first write of the minute's slices (no old rows) skips the hashing of the
# difference: each (slice, value, ad) is once in the new arrays, with clicks > 0.
WRITER_STEPS = f"""
, ad_delta AS MATERIALIZED (
    SELECT n.slice, n.value, a.ad_id, a.clicks
    FROM new_rows n, unnest(n.ad_ids, n.ad_clicks) AS a(ad_id, clicks)
    WHERE NOT EXISTS (SELECT 1 FROM old_rows)
    UNION ALL
    SELECT slice, value, ad_id, sum(clicks)::bigint AS clicks
    FROM (SELECT n.slice, n.value, a.ad_id, a.clicks
          FROM new_rows n, unnest(n.ad_ids, n.ad_clicks) AS a(ad_id, clicks)
          WHERE EXISTS (SELECT 1 FROM old_rows)
          UNION ALL
          SELECT o.slice, o.value, a.ad_id, -a.clicks
          FROM old_rows o, unnest(o.ad_ids, o.ad_clicks) AS a(ad_id, clicks)) d
    GROUP BY slice, value, ad_id HAVING sum(clicks) <> 0
), value_delta AS MATERIALIZED (
    SELECT slice, value, sum(clicks)::bigint AS clicks FROM ad_delta
    GROUP BY slice, value HAVING sum(clicks) <> 0
), hour_rows AS (
    INSERT INTO agg.slice_ad_clicks_per_hour AS t (slice, value, hour, ad_id, clicks)
    SELECT slice, value, date_trunc('hour', to_timestamp(%(m)s), 'UTC'), ad_id, clicks
    FROM ad_delta ORDER BY {_KEY}, ad_id COLLATE "C"
    ON CONFLICT (slice, value, hour, ad_id) DO UPDATE SET clicks = t.clicks + excluded.clicks
    RETURNING slice, value, ad_id, clicks
), day_rows AS (
    INSERT INTO agg.slice_ad_clicks_per_day AS t (slice, value, day, ad_id, clicks)
    SELECT slice, value, date_trunc('day', to_timestamp(%(m)s), 'UTC'), ad_id, clicks
    FROM ad_delta WHERE (SELECT count(*) FROM hour_rows) >= 0
    ORDER BY {_KEY}, ad_id COLLATE "C"
    ON CONFLICT (slice, value, day, ad_id) DO UPDATE SET clicks = t.clicks + excluded.clicks
    RETURNING slice, value, ad_id, clicks
), hour_totals AS (
    INSERT INTO agg.slice_totals_per_hour AS t (slice, value, hour, clicks)
    SELECT slice, value, date_trunc('hour', to_timestamp(%(m)s), 'UTC'), clicks
    FROM value_delta WHERE (SELECT count(*) FROM day_rows) >= 0 ORDER BY {_KEY}
    ON CONFLICT (slice, value, hour) DO UPDATE SET clicks = t.clicks + excluded.clicks
    RETURNING slice, value, clicks
), day_totals AS (
    INSERT INTO agg.slice_totals_per_day AS t (slice, value, day, clicks)
    SELECT slice, value, date_trunc('day', to_timestamp(%(m)s), 'UTC'), clicks
    FROM value_delta WHERE (SELECT count(*) FROM hour_totals) >= 0 ORDER BY {_KEY}
    ON CONFLICT (slice, value, day) DO UPDATE SET clicks = t.clicks + excluded.clicks
    RETURNING slice, value, clicks
)
SELECT z.*
FROM (SELECT array_agg(slice) AS s, array_agg(value) AS v, array_agg(ad_id) AS a
      FROM hour_rows WHERE clicks = 0) hz,
     (SELECT array_agg(slice) AS s, array_agg(value) AS v, array_agg(ad_id) AS a
      FROM day_rows WHERE clicks = 0) dz,
     (SELECT array_agg(slice) AS s, array_agg(value) AS v FROM hour_totals
      WHERE clicks = 0) htz,
     (SELECT array_agg(slice) AS s, array_agg(value) AS v FROM day_totals
      WHERE clicks = 0) dtz,
     LATERAL (VALUES (hz.s, hz.v, hz.a, dz.s, dz.v, dz.a, htz.s, htz.v, dtz.s, dtz.v))
         AS z(hour_slices, hour_values, hour_ads, day_slices, day_values, day_ads,
              hour_total_slices, hour_total_values, day_total_slices, day_total_values)
"""

_DROP_ZEROS = """
DELETE FROM agg.slice_ad_clicks_per_hour t
USING unnest(%(hs)s::text[], %(hv)s::text[], %(ha)s::text[]) AS z(slice, value, ad_id)
WHERE t.slice = z.slice AND t.value = z.value AND t.ad_id = z.ad_id
  AND t.hour = date_trunc('hour', to_timestamp(%(m)s), 'UTC') AND t.clicks = 0;
DELETE FROM agg.slice_ad_clicks_per_day t
USING unnest(%(ds)s::text[], %(dv)s::text[], %(da)s::text[]) AS z(slice, value, ad_id)
WHERE t.slice = z.slice AND t.value = z.value AND t.ad_id = z.ad_id
  AND t.day = date_trunc('day', to_timestamp(%(m)s), 'UTC') AND t.clicks = 0;
DELETE FROM agg.slice_totals_per_hour t
USING unnest(%(hts)s::text[], %(htv)s::text[]) AS z(slice, value)
WHERE t.slice = z.slice AND t.value = z.value
  AND t.hour = date_trunc('hour', to_timestamp(%(m)s), 'UTC') AND t.clicks = 0;
DELETE FROM agg.slice_totals_per_day t
USING unnest(%(dts)s::text[], %(dtv)s::text[]) AS z(slice, value)
WHERE t.slice = z.slice AND t.value = z.value
  AND t.day = date_trunc('day', to_timestamp(%(m)s), 'UTC') AND t.clicks = 0
"""


def drop_zeros(cursor: Any, minute: int, row: Sequence[Any]) -> None:
    """Delete the rollup rows that ``row`` (the ``WRITER_STEPS`` result) says fell to 0."""
    if not any(row):
        return
    names = ("hs", "hv", "ha", "ds", "dv", "da", "hts", "htv", "dts", "dtv")
    params: dict[str, Any] = {name: list(values or []) for name, values in zip(names, row,
                                                                                strict=True)}
    params["m"] = minute
    cursor.execute(_DROP_ZEROS, params)


# Whether every partition of agg.slice_values overlapping [lo, hi) is still
# attached: a detached or dropped one would read as minutes without clicks.
_RETAINED = """
NOT EXISTS (
    SELECT 1 FROM raw.partitions p
    WHERE p.parent = 'agg.slice_values' AND p.range_start < {hi} AND p.range_end > {lo}
      AND (p.dropped_at IS NOT NULL OR NOT EXISTS (
          SELECT 1 FROM pg_inherits i
          WHERE i.inhrelid = to_regclass(p.partition_name)
            AND i.inhparent = 'agg.slice_values'::regclass)))
"""

# Every (slice, value) a rollup table has rows of, by a loose scan of its primary
# key (one index probe per pair): the table is keyed by (slice, value, period, ...),
# so a period range alone could not use the index, and a check must also see rows
# of values that no minute has.
_PAIRS = """
{name} AS (
    (SELECT slice, value FROM {table} ORDER BY slice, value LIMIT 1)
    UNION ALL
    SELECT n.slice, n.value FROM {name} p, LATERAL (
        SELECT slice, value FROM {table} t WHERE (t.slice, t.value) > (p.slice, p.value)
        ORDER BY slice, value LIMIT 1) n
)"""


def _compare_sql(grain: str) -> str:
    lo, hi = "to_timestamp(%(lo)s)", "to_timestamp(%(hi)s)"
    ads, totals = f"agg.slice_ad_clicks_per_{grain}", f"agg.slice_totals_per_{grain}"
    return f"""
WITH RECURSIVE {_PAIRS.format(name="ad_pairs", table=ads)}, {_PAIRS.format(name="total_pairs",
                                                              table=totals)},
periods AS (
    SELECT p AS period FROM generate_series({lo}, {hi} - interval '1 second',
                                            make_interval(secs => %(step)s)) AS p
), checkable AS (
    SELECT period FROM periods
    WHERE {_RETAINED.format(lo="period", hi="period + make_interval(secs => %(step)s)")}
), minute_rows AS (
    SELECT date_trunc('{grain}', v.minute, 'UTC') AS period, v.slice, v.value, v.clicks,
           v.ad_ids, v.ad_clicks
    FROM agg.slice_values v WHERE v.minute >= {lo} AND v.minute < {hi}
), minute_ads AS (
    SELECT m.period, m.slice, m.value, a.ad_id, sum(a.clicks) AS clicks
    FROM minute_rows m, unnest(m.ad_ids, m.ad_clicks) AS a(ad_id, clicks)
    GROUP BY 1, 2, 3, 4
), rolled_ads AS (
    SELECT r.{grain} AS period, r.slice, r.value, r.ad_id, r.clicks
    FROM ad_pairs p JOIN {ads} r ON r.slice = p.slice AND r.value = p.value
    WHERE r.{grain} >= {lo} AND r.{grain} < {hi} AND r.clicks <> 0
), per_ad AS (
    SELECT period, slice, count(*) AS differing
    FROM minute_ads m FULL JOIN rolled_ads r USING (period, slice, value, ad_id)
    WHERE m.clicks IS DISTINCT FROM r.clicks GROUP BY 1, 2
), minute_values AS (
    SELECT period, slice, value, sum(clicks) AS clicks FROM minute_rows GROUP BY 1, 2, 3
), rolled_values AS (
    SELECT r.{grain} AS period, r.slice, r.value, r.clicks
    FROM total_pairs p JOIN {totals} r ON r.slice = p.slice AND r.value = p.value
    WHERE r.{grain} >= {lo} AND r.{grain} < {hi} AND r.clicks <> 0
), per_value AS (
    SELECT period, slice, coalesce(sum(r.clicks), 0) AS rolled_clicks,
           coalesce(sum(m.clicks), 0) AS minute_clicks,
           count(*) FILTER (WHERE m.clicks IS DISTINCT FROM r.clicks) AS differing
    FROM minute_values m FULL JOIN rolled_values r USING (period, slice, value)
    GROUP BY 1, 2
)
SELECT extract(epoch FROM period)::bigint, slice, coalesce(v.rolled_clicks, 0),
       coalesce(v.minute_clicks, 0), coalesce(v.differing, 0) + coalesce(a.differing, 0)
FROM per_value v FULL JOIN per_ad a USING (period, slice)
JOIN checkable c USING (period)
ORDER BY 1, 2
"""


_COMPARE = {grain: _compare_sql(grain) for grain in GRAINS}


def compare(cursor: Any, start: int, end: int) -> list[SliceRollupFinding]:
    """Every (grain, period, slice) with rows, of each checkable hour, then day, that
    [start, end] (minutes) touches, against its minutes: one statement per grain."""
    found: list[SliceRollupFinding] = []
    for grain, step in GRAINS.items():
        cursor.execute(_COMPARE[grain], {"lo": start_of(start, step),
                                         "hi": start_of(end, step) + step, "step": step})
        found += [SliceRollupFinding(grain, int(period), str(name), int(rolled), int(summed),
                                     int(differing))
                  for period, name, rolled, summed, differing in cursor.fetchall()]
    return found


def _repair_sql(grain: str) -> str:
    lo, hi = "to_timestamp(%(lo)s)", "to_timestamp(%(hi)s)"
    ads, totals = f"agg.slice_ad_clicks_per_{grain}", f"agg.slice_totals_per_{grain}"
    return f"""
WITH checkable AS (
    SELECT {_RETAINED.format(lo=lo, hi=hi)} AS ok
), minute_rows AS (
    SELECT value, clicks, ad_ids, ad_clicks FROM agg.slice_values
    WHERE slice = %(slice)s AND minute >= {lo} AND minute < {hi}
), fresh_ads AS (
    SELECT m.value, a.ad_id, sum(a.clicks) AS clicks
    FROM minute_rows m, unnest(m.ad_ids, m.ad_clicks) AS a(ad_id, clicks)
    GROUP BY 1, 2 HAVING sum(a.clicks) <> 0
), wrong_ads AS MATERIALIZED (
    SELECT value, ad_id, f.clicks
    FROM fresh_ads f FULL JOIN (SELECT value, ad_id, clicks FROM {ads}
                                WHERE slice = %(slice)s AND {grain} = {lo}) c
        USING (value, ad_id)
    WHERE f.clicks IS DISTINCT FROM nullif(c.clicks, 0) AND (SELECT ok FROM checkable)
), ads_removed AS (
    DELETE FROM {ads} t USING wrong_ads w
    WHERE t.slice = %(slice)s AND t.value = w.value AND t.{grain} = {lo}
      AND t.ad_id = w.ad_id AND w.clicks IS NULL
    RETURNING 1
), ads_rewritten AS (
    INSERT INTO {ads} AS t (slice, value, {grain}, ad_id, clicks)
    SELECT %(slice)s, value, {lo}, ad_id, clicks FROM wrong_ads WHERE clicks IS NOT NULL
    ORDER BY value COLLATE "C", ad_id COLLATE "C"
    ON CONFLICT (slice, value, {grain}, ad_id) DO UPDATE SET clicks = excluded.clicks
    RETURNING 1
), fresh_values AS (
    SELECT value, sum(clicks) AS clicks FROM minute_rows GROUP BY 1 HAVING sum(clicks) <> 0
), wrong_values AS MATERIALIZED (
    SELECT value, f.clicks
    FROM fresh_values f FULL JOIN (SELECT value, clicks FROM {totals}
                                   WHERE slice = %(slice)s AND {grain} = {lo}) c USING (value)
    WHERE f.clicks IS DISTINCT FROM nullif(c.clicks, 0) AND (SELECT ok FROM checkable)
), values_removed AS (
    DELETE FROM {totals} t USING wrong_values w
    WHERE t.slice = %(slice)s AND t.value = w.value AND t.{grain} = {lo} AND w.clicks IS NULL
    RETURNING 1
), values_rewritten AS (
    INSERT INTO {totals} AS t (slice, value, {grain}, clicks)
    SELECT %(slice)s, value, {lo}, clicks FROM wrong_values WHERE clicks IS NOT NULL
    ORDER BY value COLLATE "C"
    ON CONFLICT (slice, value, {grain}) DO UPDATE SET clicks = excluded.clicks
    RETURNING 1
)
SELECT (SELECT ok FROM checkable),
       (SELECT count(*) FROM ads_removed) + (SELECT count(*) FROM ads_rewritten)
       + (SELECT count(*) FROM values_removed) + (SELECT count(*) FROM values_rewritten)
"""


_REPAIR = {grain: _repair_sql(grain) for grain in GRAINS}


def repair(cursor: Any, grain: str, period: int, slice_name: str) -> int | None:
    """Recompute one slice's rollup rows of one hour or day (``period``, its start) from
    its minutes in ``agg.slice_values``.

    Takes the slices lock of each of its minutes first (so run it in a transaction
    of its own, and commit promptly: slice writers of those minutes wait). Returns
    how many rollup rows it rewrote or deleted, or None if the period is no longer
    checkable (minute retention dropped some of its minutes meanwhile).
    """
    step = GRAINS[grain]
    lock_slices_exclusively(cursor, range(period, period + step, 60))
    cursor.execute(_REPAIR[grain], {"lo": period, "hi": period + step, "slice": slice_name})
    ok, rewritten = cursor.fetchone()
    return int(rewritten) if ok else None
