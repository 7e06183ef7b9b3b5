"""Hour and day rollups of the slices (adapter): build, keep, check, repair.

``agg.slice_ad_clicks_per_hour`` / ``_per_day`` hold, per (slice, value, UTC hour
or day, ad), the ad's clicks in that value summed over the ``agg.slice_values``
minutes the period covers; ``agg.slice_totals_per_hour`` / ``_per_day`` the
value's clicks (migration 0013). They exist only for the (grain, period, slice)
marked built in ``agg.slice_rollup_periods``; for those the invariant, true at
every commit, is the one of the per-ad rollups (stores/rollups.py): each row equals
the sum of its minutes, for minutes whose ``agg.slice_values`` partition minute
retention has not dropped (the rollups outlive those, unchanged). A row exists only
with clicks.

Built once (``build``, called by pipeline/slice_rollup_builds.py): an hour from its
minutes by one ``INSERT ... SELECT ... GROUP BY`` over their unnested arrays, a day
from its 24 built hours' rows, each with its mark, in a transaction that holds the
slices lock of every minute the period covers. Kept after that by difference, in
the statement of the slice writer (stores/slices.py) that replaces a minute's slice
rows: ``WRITER_STEPS`` reads the marks of the minute's hour and day first, and for
the slices marked built only, unnests the old arrays (``DELETE ... RETURNING``) and
the new ones (``INSERT ... RETURNING``), sums new minus old per (slice, value, ad)
and adds that to the hour rows, the day rows, the hour totals and the day totals, in
that order and each sorted by key, so that writers of two minutes of one hour lock
rollup rows in one order and cannot deadlock. With no mark it unnests nothing. Rows
that fell to 0 are deleted by a second statement (``drop_zeros``), sent only when
one did.

Exactly once: the builder holds every covered minute's slices lock from before the
statement that sums the minutes to its commit; the writer holds its minute's lock
and reads the marks in a statement run after taking it (READ COMMITTED: a snapshot
later than the lock). So a writer either committed before the build (summed by it,
and saw no mark) or runs after it (sees the mark and the built rows, adds its
difference): never both, never neither (pipeline/slice_rollup_builds.py).

Checked and repaired by reconciliation (pipeline/reconcile.py) per built (grain,
period, slice): ``compare`` makes the cheap check (totals against the minutes'
value clicks, ad rows summed against the totals) for every built period of its
range and the full per-ad check for a few never fully checked; ``repair``
recomputes one (an hour from ``agg.slice_values``, a day from its hours) while
holding the slices lock of every minute the period covers. Only periods whose
``agg.slice_values`` partitions are all still attached are built, checked or
repaired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from farloom_tasks.core.partitions import DAY, HOUR, start_of
from farloom_tasks.core.reconciliation import SliceRollupFinding
from farloom_tasks.stores.minute_locks import lock_slices_exclusively
from farloom_tasks.stores.partitions import SLICE_VALUES, attached_throughout_sql

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
, built AS MATERIALIZED (
    SELECT grain, slice FROM agg.slice_rollup_periods
    WHERE (grain = 'hour' AND period = date_trunc('hour', to_timestamp(%(m)s), 'UTC'))
       OR (grain = 'day' AND period = date_trunc('day', to_timestamp(%(m)s), 'UTC'))
), ad_delta AS MATERIALIZED (
    SELECT n.slice, n.value, a.ad_id, a.clicks
    FROM new_rows n, unnest(n.ad_ids, n.ad_clicks) AS a(ad_id, clicks)
    WHERE NOT EXISTS (SELECT 1 FROM old_rows) AND EXISTS (SELECT 1 FROM built)
      AND n.slice IN (SELECT slice FROM built)
    UNION ALL
    SELECT slice, value, ad_id, sum(clicks)::bigint AS clicks
    FROM (SELECT n.slice, n.value, a.ad_id, a.clicks
          FROM new_rows n, unnest(n.ad_ids, n.ad_clicks) AS a(ad_id, clicks)
          WHERE EXISTS (SELECT 1 FROM old_rows) AND EXISTS (SELECT 1 FROM built)
            AND n.slice IN (SELECT slice FROM built)
          UNION ALL
          SELECT o.slice, o.value, a.ad_id, -a.clicks
          FROM old_rows o, unnest(o.ad_ids, o.ad_clicks) AS a(ad_id, clicks)
          WHERE EXISTS (SELECT 1 FROM built) AND o.slice IN (SELECT slice FROM built)) d
    GROUP BY slice, value, ad_id HAVING sum(clicks) <> 0
), value_delta AS MATERIALIZED (
    SELECT slice, value, sum(clicks)::bigint AS clicks FROM ad_delta
    GROUP BY slice, value HAVING sum(clicks) <> 0
), hour_rows AS (
    INSERT INTO agg.slice_ad_clicks_per_hour AS t (slice, value, hour, ad_id, clicks)
    SELECT slice, value, date_trunc('hour', to_timestamp(%(m)s), 'UTC'), ad_id, clicks
    FROM ad_delta WHERE slice IN (SELECT slice FROM built WHERE grain = 'hour')
    ORDER BY {_KEY}, ad_id COLLATE "C"
    ON CONFLICT (slice, value, hour, ad_id) DO UPDATE SET clicks = t.clicks + excluded.clicks
    RETURNING slice, value, ad_id, clicks
), day_rows AS (
    INSERT INTO agg.slice_ad_clicks_per_day AS t (slice, value, day, ad_id, clicks)
    SELECT slice, value, date_trunc('day', to_timestamp(%(m)s), 'UTC'), ad_id, clicks
    FROM ad_delta WHERE (SELECT count(*) FROM hour_rows) >= 0
      AND slice IN (SELECT slice FROM built WHERE grain = 'day')
    ORDER BY {_KEY}, ad_id COLLATE "C"
    ON CONFLICT (slice, value, day, ad_id) DO UPDATE SET clicks = t.clicks + excluded.clicks
    RETURNING slice, value, ad_id, clicks
), hour_totals AS (
    INSERT INTO agg.slice_totals_per_hour AS t (slice, value, hour, clicks)
    SELECT slice, value, date_trunc('hour', to_timestamp(%(m)s), 'UTC'), clicks
    FROM value_delta WHERE (SELECT count(*) FROM day_rows) >= 0
      AND slice IN (SELECT slice FROM built WHERE grain = 'hour') ORDER BY {_KEY}
    ON CONFLICT (slice, value, hour) DO UPDATE SET clicks = t.clicks + excluded.clicks
    RETURNING slice, value, clicks
), day_totals AS (
    INSERT INTO agg.slice_totals_per_day AS t (slice, value, day, clicks)
    SELECT slice, value, date_trunc('day', to_timestamp(%(m)s), 'UTC'), clicks
    FROM value_delta WHERE (SELECT count(*) FROM hour_totals) >= 0
      AND slice IN (SELECT slice FROM built WHERE grain = 'day') ORDER BY {_KEY}
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


_RETAINED = attached_throughout_sql(SLICE_VALUES)
_LO, _HI = "to_timestamp(%(lo)s)", "to_timestamp(%(hi)s)"


# --- Building --------------------------------------------------------------------

# Whether one (grain, period, slice) can be built now: every minute closed, every
# agg.slice_values partition attached, the latest claimed revision of each of its
# minutes sliced (an hour), or its 24 hours built (a day); and whether it already is.
# A slice task writes every stale slice of its minute at its revision in one
# transaction, so "sliced" is any slice at that revision: a slice added to
# FARLOOM_DIMENSIONS later, which old minutes never get, does not hold a build back.
_READINESS = f"""
SELECT coalesce((SELECT closed_through FROM agg.watermark WHERE id = 1)
                >= {_HI} - interval '1 minute', false),
       {_RETAINED.format(lo=_LO, hi=_HI)},
       CASE WHEN %(grain)s = 'hour' THEN NOT EXISTS (
                SELECT 1 FROM agg.minute_closes c
                WHERE c.minute >= {_LO} AND c.minute < {_HI}
                  AND c.started_revision IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM agg.slice_minutes m
                                  WHERE m.minute = c.minute
                                    AND m.revision >= c.started_revision))
            ELSE (SELECT count(*) FROM agg.slice_rollup_periods
                  WHERE grain = 'hour' AND slice = %(slice)s
                    AND period >= {_LO} AND period < {_HI}) = 24 END,
       EXISTS (SELECT 1 FROM agg.slice_rollup_periods
               WHERE grain = %(grain)s AND period = {_LO} AND slice = %(slice)s)
"""

# An hour from its minutes: every (value, ad) pair of the slice's minutes unnested
# and summed in one GROUP BY, inserted in key order; then the values' totals and
# the mark, all in the builder's transaction.
_BUILD_HOUR = f"""
WITH ads AS (
    INSERT INTO agg.slice_ad_clicks_per_hour AS t (slice, value, hour, ad_id, clicks)
    SELECT %(slice)s, v.value, {_LO}, a.ad_id, sum(a.clicks)
    FROM agg.slice_values v, unnest(v.ad_ids, v.ad_clicks) AS a(ad_id, clicks)
    WHERE v.slice = %(slice)s AND v.minute >= {_LO} AND v.minute < {_HI}
    GROUP BY v.value, a.ad_id ORDER BY v.value COLLATE "C", a.ad_id COLLATE "C"
    ON CONFLICT (slice, value, hour, ad_id) DO UPDATE SET clicks = excluded.clicks
    RETURNING 1
), totals AS (
    INSERT INTO agg.slice_totals_per_hour AS t (slice, value, hour, clicks)
    SELECT %(slice)s, value, {_LO}, sum(clicks) FROM agg.slice_values
    WHERE slice = %(slice)s AND minute >= {_LO} AND minute < {_HI}
    GROUP BY value HAVING sum(clicks) <> 0 ORDER BY value COLLATE "C"
    ON CONFLICT (slice, value, hour) DO UPDATE SET clicks = excluded.clicks
    RETURNING 1
), marked AS (
    INSERT INTO agg.slice_rollup_periods (grain, period, slice)
    VALUES ('hour', {_LO}, %(slice)s) RETURNING 1
)
SELECT (SELECT count(*) FROM ads), (SELECT count(*) FROM totals), (SELECT count(*) FROM marked)
"""

# The values a slice has hour rows of in [lo, hi): the totals key is (slice, value,
# hour), so this scans the slice's totals entries, one per (value, hour) ever.
_HOUR_VALUES = f"""
hour_values AS MATERIALIZED (
    SELECT DISTINCT value FROM agg.slice_totals_per_hour
    WHERE slice = %(slice)s AND hour >= {_LO} AND hour < {_HI}
)"""

# A day from its 24 built hours' rows (each already the sum of its minutes), per
# value a range scan of the hour rows' key.
_BUILD_DAY = f"""
WITH {_HOUR_VALUES}, ads AS (
    INSERT INTO agg.slice_ad_clicks_per_day AS t (slice, value, day, ad_id, clicks)
    SELECT %(slice)s, r.value, {_LO}, r.ad_id, sum(r.clicks)
    FROM hour_values hv JOIN agg.slice_ad_clicks_per_hour r
        ON r.slice = %(slice)s AND r.value = hv.value AND r.hour >= {_LO} AND r.hour < {_HI}
    GROUP BY r.value, r.ad_id HAVING sum(r.clicks) <> 0
    ORDER BY r.value COLLATE "C", r.ad_id COLLATE "C"
    ON CONFLICT (slice, value, day, ad_id) DO UPDATE SET clicks = excluded.clicks
    RETURNING 1
), totals AS (
    INSERT INTO agg.slice_totals_per_day AS t (slice, value, day, clicks)
    SELECT %(slice)s, r.value, {_LO}, sum(r.clicks)
    FROM hour_values hv JOIN agg.slice_totals_per_hour r
        ON r.slice = %(slice)s AND r.value = hv.value AND r.hour >= {_LO} AND r.hour < {_HI}
    GROUP BY r.value HAVING sum(r.clicks) <> 0 ORDER BY r.value COLLATE "C"
    ON CONFLICT (slice, value, day) DO UPDATE SET clicks = excluded.clicks
    RETURNING 1
), marked AS (
    INSERT INTO agg.slice_rollup_periods (grain, period, slice)
    VALUES ('day', {_LO}, %(slice)s) RETURNING 1
)
SELECT (SELECT count(*) FROM ads), (SELECT count(*) FROM totals), (SELECT count(*) FROM marked)
"""


@dataclass(frozen=True, slots=True)
class Readiness:
    closed: bool  # every minute of the period is closed (the watermark is past it)
    attached: bool  # every agg.slice_values partition of the period is attached
    complete: bool  # an hour: its minutes are sliced; a day: its 24 hours are built
    built: bool  # its mark exists already

    @property
    def buildable(self) -> bool:
        return self.closed and self.attached and self.complete and not self.built


def readiness(cursor: Any, grain: str, period: int, slice_name: str) -> Readiness:
    """Whether ``slice_name``'s ``grain`` starting at ``period`` can be built now."""
    cursor.execute(_READINESS, {"grain": grain, "lo": period, "hi": period + GRAINS[grain],
                                "slice": slice_name})
    return Readiness(*(bool(flag) for flag in cursor.fetchone()))


def build(cursor: Any, grain: str, period: int, slice_name: str) -> int | None:
    """Build one slice's rollup rows of one hour (from its minutes) or day (from its
    24 built hours) and mark it built; None if it cannot be built now or already is.

    Takes the slices lock of every minute the period covers first, in minute order
    (run it in a transaction of its own and commit at once), then checks readiness
    again in a statement after the locks, so the minutes' rows it sums are the ones
    committed by every writer before it (module docstring). Returns the rollup rows
    written.
    """
    step = GRAINS[grain]
    lock_slices_exclusively(cursor, range(period, period + step, 60))
    if not readiness(cursor, grain, period, slice_name).buildable:
        return None
    cursor.execute(_BUILD_HOUR if grain == "hour" else _BUILD_DAY,
                   {"lo": period, "hi": period + step, "slice": slice_name})
    ads, totals, _ = cursor.fetchone()
    return int(ads) + int(totals)


# Hours that have slice minutes, oldest first: a loose scan of agg.slice_minutes'
# key (minute, slice), one index probe per such hour, that stops at the watermark.
_HOURS_WITH_MINUTES = """
WITH RECURSIVE hours AS (
    (SELECT date_trunc('hour', minute, 'UTC') AS hour FROM agg.slice_minutes
     ORDER BY minute LIMIT 1)
    UNION ALL
    SELECT n.hour FROM hours h, LATERAL (
        SELECT date_trunc('hour', minute, 'UTC') AS hour FROM agg.slice_minutes
        WHERE minute >= h.hour + interval '1 hour' ORDER BY minute LIMIT 1) n
)
SELECT 'hour', extract(epoch FROM h.hour)::bigint FROM hours h
WHERE h.hour + interval '59 minutes'
      <= (SELECT closed_through FROM agg.watermark WHERE id = 1)
  AND NOT EXISTS (
      -- a minute whose latest claimed revision is not sliced yet: not a candidate, so
      -- hours held back (a failed slice task) never crowd newer ones out of the limit
      SELECT 1 FROM agg.minute_closes c
      WHERE c.minute >= h.hour AND c.minute < h.hour + interval '1 hour'
        AND c.started_revision IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM agg.slice_minutes m
                        WHERE m.minute = c.minute AND m.revision >= c.started_revision))
  AND (SELECT count(*) FROM agg.slice_rollup_periods p
       WHERE p.grain = 'hour' AND p.period = h.hour AND p.slice = ANY(%(names)s::text[]))
      < cardinality(%(names)s::text[])
UNION ALL
SELECT 'day', extract(epoch FROM d.day)::bigint
FROM (SELECT DISTINCT date_trunc('day', period, 'UTC') AS day FROM agg.slice_rollup_periods
      WHERE grain = 'hour' AND slice = ANY(%(names)s::text[])) d
WHERE d.day + interval '1 day' - interval '1 minute'
      <= (SELECT closed_through FROM agg.watermark WHERE id = 1)
  AND (SELECT count(*) FROM agg.slice_rollup_periods p
       WHERE p.grain = 'day' AND p.period = d.day AND p.slice = ANY(%(names)s::text[]))
      < cardinality(%(names)s::text[])
ORDER BY 2, 1 DESC
LIMIT %(limit)s
"""


def unbuilt(cursor: Any, names: Sequence[str], limit: int) -> list[tuple[str, int]]:
    """Up to ``limit`` closed (grain, period) that some slice of ``names`` has not built:
    hours with slice minutes, and days with a built hour; oldest first, an hour before
    the day it ends."""
    cursor.execute(_HOURS_WITH_MINUTES, {"names": list(names), "limit": limit})
    return [(str(grain), int(period)) for grain, period in cursor.fetchall()]


def built_periods(cursor: Any, slice_name: str, start: int,
                  end: int) -> tuple[frozenset[int], frozenset[int]]:
    """(hours, days): the starts of ``slice_name``'s built hours and days that lie in
    [start, end) (epoch seconds), whose rollup rows a read may use as tiles
    (core.tiling.tile_built). One index range scan of agg.slice_rollup_periods per grain."""
    cursor.execute("""
        SELECT grain, extract(epoch FROM period)::bigint FROM agg.slice_rollup_periods
        WHERE slice = %(slice)s AND grain IN ('hour', 'day')
          AND period >= to_timestamp(%(s)s)
          AND period + CASE grain WHEN 'hour' THEN interval '1 hour' ELSE interval '1 day' END
              <= to_timestamp(%(e)s)
    """, {"slice": slice_name, "s": start, "e": end})
    rows = cursor.fetchall()
    return (frozenset(int(p) for g, p in rows if g == "hour"),
            frozenset(int(p) for g, p in rows if g == "day"))


# --- Checking --------------------------------------------------------------------

# Every (slice, value) a rollup table has rows of, by a loose scan of its primary
# key (one index probe per pair): the table is keyed by (slice, value, period, ...),
# so a period alone could not use the index, and a check must also see rows of
# values that no minute has.
_PAIRS = """
{name} AS (
    (SELECT slice, value FROM {table} ORDER BY slice, value LIMIT 1)
    UNION ALL
    SELECT n.slice, n.value FROM {name} p, LATERAL (
        SELECT slice, value FROM {table} t WHERE (t.slice, t.value) > (p.slice, p.value)
        ORDER BY slice, value LIMIT 1) n
)"""

# The built (period, slice) of one grain in [lo, hi) that are checkable.
_BUILT = """
built AS MATERIALIZED (
    SELECT b.period, b.slice, b.fully_checked_at FROM agg.slice_rollup_periods b
    WHERE b.grain = '{grain}' AND b.period >= {lo} AND b.period < {hi}
      AND {retained}
)"""


def _cheap_sql(grain: str) -> str:
    """Per built (period, slice): its value totals against the sum of its minutes'
    value clicks (agg.slice_values rows, never their arrays), and its ad rows summed
    per value against those totals."""
    ads, totals = f"agg.slice_ad_clicks_per_{grain}", f"agg.slice_totals_per_{grain}"
    step = "make_interval(secs => %(step)s)"
    built = _BUILT.format(grain=grain, lo=_LO, hi=_HI, retained=_RETAINED.format(
        lo="b.period", hi=f"b.period + {step}"))
    return f"""
WITH RECURSIVE {_PAIRS.format(name="ad_pairs", table=ads)},
{_PAIRS.format(name="total_pairs", table=totals)}, {built},
minute_values AS (
    SELECT b.period, b.slice, v.value, sum(v.clicks) AS clicks
    FROM built b JOIN agg.slice_values v
        ON v.slice = b.slice AND v.minute >= b.period AND v.minute < b.period + {step}
    GROUP BY 1, 2, 3
), rolled_values AS (
    SELECT b.period, b.slice, t.value, t.clicks
    FROM built b JOIN total_pairs p ON p.slice = b.slice
    JOIN {totals} t ON t.slice = p.slice AND t.value = p.value AND t.{grain} = b.period
), summed_ads AS (
    SELECT b.period, b.slice, r.value, sum(r.clicks) AS clicks
    FROM built b JOIN ad_pairs p ON p.slice = b.slice
    JOIN {ads} r ON r.slice = p.slice AND r.value = p.value AND r.{grain} = b.period
    GROUP BY 1, 2, 3
), per_value AS (
    SELECT period, slice, coalesce(sum(r.clicks), 0) AS rolled_clicks,
           coalesce(sum(m.clicks), 0) AS minute_clicks,
           count(*) FILTER (WHERE nullif(m.clicks, 0) IS DISTINCT FROM nullif(r.clicks, 0))
               AS differing
    FROM minute_values m FULL JOIN rolled_values r USING (period, slice, value)
    GROUP BY 1, 2
), per_ad_sum AS (
    SELECT period, slice,
           count(*) FILTER (WHERE nullif(a.clicks, 0) IS DISTINCT FROM nullif(r.clicks, 0))
               AS differing
    FROM summed_ads a FULL JOIN rolled_values r USING (period, slice, value)
    GROUP BY 1, 2
)
SELECT extract(epoch FROM b.period)::bigint, b.slice, b.fully_checked_at IS NULL,
       coalesce(v.rolled_clicks, 0), coalesce(v.minute_clicks, 0),
       coalesce(v.differing, 0) + coalesce(a.differing, 0)
FROM built b LEFT JOIN per_value v USING (period, slice) LEFT JOIN per_ad_sum a
    USING (period, slice)
ORDER BY 1, 2
"""


def _full_sql(grain: str) -> str:
    """One built (period, slice)'s ad rows against what they are made of: an hour's
    against its minutes' unnested arrays, a day's against its 24 hours' rows."""
    ads = f"agg.slice_ad_clicks_per_{grain}"
    if grain == "hour":
        source = f"""
    SELECT m.value, a.ad_id, sum(a.clicks) AS clicks
    FROM agg.slice_values m, unnest(m.ad_ids, m.ad_clicks) AS a(ad_id, clicks)
    WHERE m.slice = %(slice)s AND m.minute >= {_LO} AND m.minute < {_HI}
    GROUP BY 1, 2"""
    else:
        source = f"""
    SELECT r.value, r.ad_id, sum(r.clicks) AS clicks
    FROM hour_values hv JOIN agg.slice_ad_clicks_per_hour r
        ON r.slice = %(slice)s AND r.value = hv.value AND r.hour >= {_LO} AND r.hour < {_HI}
    GROUP BY 1, 2"""
    return f"""
WITH RECURSIVE {_PAIRS.format(name="ad_pairs", table=ads)}, {_HOUR_VALUES},
source AS ({source}
), rolled AS (
    SELECT r.value, r.ad_id, r.clicks FROM ad_pairs p JOIN {ads} r
        ON r.slice = p.slice AND r.value = p.value AND r.{grain} = {_LO}
    WHERE p.slice = %(slice)s
)
SELECT count(*) FROM source s FULL JOIN rolled r USING (value, ad_id)
WHERE nullif(s.clicks, 0) IS DISTINCT FROM nullif(r.clicks, 0)
"""


_CHEAP = {grain: _cheap_sql(grain) for grain in GRAINS}
_FULL = {grain: _full_sql(grain) for grain in GRAINS}
_MARK_FULLY_CHECKED = """
UPDATE agg.slice_rollup_periods SET fully_checked_at = now()
WHERE grain = %(grain)s AND period = to_timestamp(%(period)s) AND slice = %(slice)s
"""


# (period, slice) pairs of each grain one run checks in full: an hour's full check
# unnests every pair of its minutes (docs/design.md §6 for the cost).
FULL_CHECKS_PER_GRAIN = 4


def compare(cursor: Any, start: int, end: int,
            full_checks_per_grain: int = FULL_CHECKS_PER_GRAIN) -> list[SliceRollupFinding]:
    """Every built, checkable (grain, period, slice) of each hour, then day, that
    [start, end] (minutes) touches: the cheap check (totals against the minutes'
    value clicks, ad rows summed against totals) for all of them, and the full
    per-ad check for the oldest ``full_checks_per_grain`` of each grain never fully
    checked, which are then marked so when nothing differed."""
    found: list[SliceRollupFinding] = []
    for grain, step in GRAINS.items():
        cursor.execute(_CHEAP[grain], {"lo": start_of(start, step),
                                       "hi": start_of(end, step) + step, "step": step})
        rows = cursor.fetchall()
        full_left = full_checks_per_grain
        for period, name, unchecked, rolled, summed, differing in rows:
            differing = int(differing)
            if unchecked and full_left > 0:
                full_left -= 1
                params = {"lo": int(period), "hi": int(period) + step, "slice": str(name)}
                cursor.execute(_FULL[grain], params)
                full_differing = int(cursor.fetchone()[0])
                if not full_differing and not differing:
                    cursor.execute(_MARK_FULLY_CHECKED, {"grain": grain, "period": int(period),
                                                         "slice": str(name)})
                differing += full_differing
            found.append(SliceRollupFinding(grain, int(period), str(name), int(rolled),
                                            int(summed), differing))
    return found


# --- Repairing -------------------------------------------------------------------

def _repair_sql(grain: str) -> str:
    """One built (period, slice) recomputed: an hour from its minutes, a day from its
    hours (built hours, and checked and repaired before the days in a run)."""
    ads, totals = f"agg.slice_ad_clicks_per_{grain}", f"agg.slice_totals_per_{grain}"
    if grain == "hour":
        fresh_ads = f"""
    SELECT m.value, a.ad_id, sum(a.clicks) AS clicks
    FROM agg.slice_values m, unnest(m.ad_ids, m.ad_clicks) AS a(ad_id, clicks)
    WHERE m.slice = %(slice)s AND m.minute >= {_LO} AND m.minute < {_HI}
    GROUP BY 1, 2 HAVING sum(a.clicks) <> 0"""
        fresh_values = f"""
    SELECT value, sum(clicks) AS clicks FROM agg.slice_values
    WHERE slice = %(slice)s AND minute >= {_LO} AND minute < {_HI}
    GROUP BY 1 HAVING sum(clicks) <> 0"""
    else:
        fresh_ads = f"""
    SELECT r.value, r.ad_id, sum(r.clicks) AS clicks
    FROM hour_values hv JOIN agg.slice_ad_clicks_per_hour r
        ON r.slice = %(slice)s AND r.value = hv.value AND r.hour >= {_LO} AND r.hour < {_HI}
    GROUP BY 1, 2 HAVING sum(r.clicks) <> 0"""
        fresh_values = f"""
    SELECT r.value, sum(r.clicks) AS clicks
    FROM hour_values hv JOIN agg.slice_totals_per_hour r
        ON r.slice = %(slice)s AND r.value = hv.value AND r.hour >= {_LO} AND r.hour < {_HI}
    GROUP BY 1 HAVING sum(r.clicks) <> 0"""
    return f"""
WITH RECURSIVE {_PAIRS.format(name="ad_pairs", table=ads)},
{_PAIRS.format(name="total_pairs", table=totals)}, {_HOUR_VALUES},
checkable AS (
    SELECT {_RETAINED.format(lo=_LO, hi=_HI)} AND EXISTS (
        SELECT 1 FROM agg.slice_rollup_periods
        WHERE grain = '{grain}' AND period = {_LO} AND slice = %(slice)s) AS ok
), fresh_ads AS ({fresh_ads}
), wrong_ads AS MATERIALIZED (
    SELECT value, ad_id, f.clicks
    FROM fresh_ads f FULL JOIN (
        SELECT r.value, r.ad_id, r.clicks FROM ad_pairs p JOIN {ads} r
            ON r.slice = p.slice AND r.value = p.value AND r.{grain} = {_LO}
        WHERE p.slice = %(slice)s) c USING (value, ad_id)
    WHERE f.clicks IS DISTINCT FROM nullif(c.clicks, 0) AND (SELECT ok FROM checkable)
), ads_removed AS (
    DELETE FROM {ads} t USING wrong_ads w
    WHERE t.slice = %(slice)s AND t.value = w.value AND t.{grain} = {_LO}
      AND t.ad_id = w.ad_id AND w.clicks IS NULL
    RETURNING 1
), ads_rewritten AS (
    INSERT INTO {ads} AS t (slice, value, {grain}, ad_id, clicks)
    SELECT %(slice)s, value, {_LO}, ad_id, clicks FROM wrong_ads WHERE clicks IS NOT NULL
    ORDER BY value COLLATE "C", ad_id COLLATE "C"
    ON CONFLICT (slice, value, {grain}, ad_id) DO UPDATE SET clicks = excluded.clicks
    RETURNING 1
), fresh_values AS ({fresh_values}
), wrong_values AS MATERIALIZED (
    SELECT value, f.clicks
    FROM fresh_values f FULL JOIN (
        SELECT r.value, r.clicks FROM total_pairs p JOIN {totals} r
            ON r.slice = p.slice AND r.value = p.value AND r.{grain} = {_LO}
        WHERE p.slice = %(slice)s) c USING (value)
    WHERE f.clicks IS DISTINCT FROM nullif(c.clicks, 0) AND (SELECT ok FROM checkable)
), values_removed AS (
    DELETE FROM {totals} t USING wrong_values w
    WHERE t.slice = %(slice)s AND t.value = w.value AND t.{grain} = {_LO} AND w.clicks IS NULL
    RETURNING 1
), values_rewritten AS (
    INSERT INTO {totals} AS t (slice, value, {grain}, clicks)
    SELECT %(slice)s, value, {_LO}, clicks FROM wrong_values WHERE clicks IS NOT NULL
    ORDER BY value COLLATE "C"
    ON CONFLICT (slice, value, {grain}) DO UPDATE SET clicks = excluded.clicks
    RETURNING 1
), checked AS (
    UPDATE agg.slice_rollup_periods SET fully_checked_at = now()
    WHERE grain = '{grain}' AND period = {_LO} AND slice = %(slice)s
      AND (SELECT ok FROM checkable)
    RETURNING 1
)
SELECT (SELECT ok FROM checkable),
       (SELECT count(*) FROM ads_removed) + (SELECT count(*) FROM ads_rewritten)
       + (SELECT count(*) FROM values_removed) + (SELECT count(*) FROM values_rewritten)
       + 0 * (SELECT count(*) FROM checked)
"""


_REPAIR = {grain: _repair_sql(grain) for grain in GRAINS}


def repair(cursor: Any, grain: str, period: int, slice_name: str) -> int | None:
    """Recompute one slice's built rollup rows of one hour (from its minutes in
    ``agg.slice_values``) or day (from its hours' rows).

    Takes the slices lock of each of its minutes first (so run it in a transaction
    of its own, and commit promptly: slice writers of those minutes wait). Returns
    how many rollup rows it rewrote or deleted, or None if the period is not
    checkable (minute retention dropped some of its minutes meanwhile, or it is
    not built: its rows are then no one's to keep).
    """
    step = GRAINS[grain]
    lock_slices_exclusively(cursor, range(period, period + step, 60))
    cursor.execute(_REPAIR[grain], {"lo": period, "hi": period + step, "slice": slice_name})
    ok, rewritten = cursor.fetchone()
    return int(rewritten) if ok else None
