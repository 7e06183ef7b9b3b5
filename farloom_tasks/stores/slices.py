"""Slices in PostgreSQL (adapter): one minute's slices computed from raw, written and compared.

``computed_sql`` is the one statement both the writer and reconciliation use:
one scan of the minutes' raw rows grouped by GROUPING SETS (one set per dimension
slice, each with ``ad_id``, and the per-ad counts, joined to ``agg.ads`` for the
owner slices), then one row
per (minute, slice, value) with every ad ranked as §2.5 ranks the top k
(clicks descending, then ad_id in code-point order). A click without a value
for a slice (no country, no owner in the catalog, one part of a combination
missing) is in no value of that slice.

``agg.slice_minutes`` holds the revision each (minute, slice) was computed at;
``write`` replaces a slice's rows only for a newer revision, under the
minute's slices lock, so a task run twice or out of order changes nothing, and
in the same statement adds the change to the hour and day slice rollups of the
periods already built for that slice (stores/slice_rollups.py).
Every function runs in the caller's transaction (its cursor).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from farloom_tasks.core.dimensions import CLICK_DIMENSIONS, COMBINATION_SEPARATOR, Slice
from farloom_tasks.core.reconciliation import SliceFinding
from farloom_tasks.stores import slice_rollups
from farloom_tasks.stores.minute_locks import SLICES_LOCK_CLASS, minute_lock_key

__all__ = ["SLICES_LOCK_CLASS"]  # re-exported: callers name the slices lock from here
# Owner slices: always made, their value is the ad's owner in agg.ads.
CAMPAIGN, ADVERTISER = "campaign", "advertiser"
_OWNER_COLUMNS = {CAMPAIGN: "campaign_id", ADVERTISER: "advertiser_id"}
_RANKED = 'ORDER BY clicks DESC, ad_id COLLATE "C"'


def slice_names(slices: Sequence[Slice]) -> list[str]:
    """Every slice made for ``slices`` (FARLOOM_DIMENSIONS): theirs, then the owners'."""
    return [s.name for s in slices] + list(_OWNER_COLUMNS)


def _dimension_expression(name: str) -> str:
    """The SQL of dimension ``name``'s value in a raw row ``r``: a column of the
    contract's own dimensions, else the click's custom ``dimensions`` (migration 0014)."""
    if name in CLICK_DIMENSIONS:
        return f"r.{name}"
    # core/dimensions.py admits only [a-z][a-z0-9_]* names: a literal is safe here.
    return f"r.dimensions ->> '{name}'"


def computed_sql(slices: Sequence[Slice]) -> str:
    """A SELECT of (minute, slice, value, clicks, distinct_ads, ad_ids, ad_clicks) for
    every minute in [%(s)s, %(e)s] (epoch seconds), from raw and agg.ads.

    One scan of raw grouped by GROUPING SETS: one set per dimension slice, each with
    ``ad_id``, plus ``(minute, ad_id)``. The owner slices come from that last set, the
    minute's per-ad counts, joined to ``agg.ads``: an ad has one campaign and one
    advertiser, so its count is its count in its owner's value, and the catalog is
    joined to one row per ad instead of one per click (docs/benchmarks.md, "Slices
    at close").
    """
    dimensions = sorted({d for s in slices for d in s.dimensions})

    def mask(grouped: Sequence[str]) -> int:
        # GROUPING() sets the bit of every dimension not grouped, the first one highest.
        return sum(1 << (len(dimensions) - 1 - i) for i, d in enumerate(dimensions)
                   if d not in grouped)

    sets = [(s.name, list(s.dimensions)) for s in slices]
    grouping_sets = ", ".join([*(f"(minute, {', '.join(cols)}, ad_id)" for _, cols in sets),
                               "(minute, ad_id)"])
    per_ad = mask([])  # the (minute, ad_id) set: no dimension grouped
    grouping = f"GROUPING({', '.join(dimensions)})" if dimensions else "0"
    dimension_columns = "".join(f"{_dimension_expression(name)} AS {name}, "
                                for name in dimensions)
    dimension_slices = ""
    if sets:
        slice_case = " ".join(f"WHEN {mask(cols)} THEN '{name}'" for name, cols in sets)
        value_case = " ".join(
            f"WHEN {mask(cols)} THEN concat_ws('{COMBINATION_SEPARATOR}', {', '.join(cols)})"
            for _, cols in sets)
        kept = " OR ".join(
            f"(g = {mask(cols)} AND " + " AND ".join(f"{c} IS NOT NULL" for c in cols) + ")"
            for _, cols in sets)
        dimension_slices = f"""
    SELECT minute, CASE g {slice_case} END AS slice, CASE g {value_case} END AS value,
           ad_id, clicks
    FROM grouped WHERE {kept}
    UNION ALL"""
    owners = ", ".join(f"('{name}', a.{column})" for name, column in _OWNER_COLUMNS.items())
    return f"""
WITH grouped AS MATERIALIZED (
    SELECT {grouping} AS g, minute, {''.join(f'{d}, ' for d in dimensions)}ad_id,
           count(*) AS clicks
    FROM (SELECT r.minute, {dimension_columns}r.ad_id
          FROM raw.ad_clicks r
          WHERE r.minute BETWEEN to_timestamp(%(s)s) AND to_timestamp(%(e)s)) c
    GROUP BY GROUPING SETS ({grouping_sets})
), sliced AS ({dimension_slices}
    SELECT p.minute, o.slice, o.value, p.ad_id, p.clicks
    FROM grouped p JOIN agg.ads a ON a.ad_id = p.ad_id
    CROSS JOIN LATERAL (VALUES {owners}) AS o (slice, value)
    WHERE p.g = {per_ad} AND o.value IS NOT NULL
)
SELECT minute, slice COLLATE "C" AS slice, value COLLATE "C" AS value,
       sum(clicks)::bigint AS clicks, count(*)::int AS distinct_ads,
       array_agg(ad_id {_RANKED}) AS ad_ids, array_agg(clicks {_RANKED}) AS ad_clicks
FROM sliced GROUP BY minute, slice, value"""


def lock_minute(cursor: Any, minute: int) -> None:
    """Hold ``minute``'s slices lock until the transaction ends: one writer at a time."""
    cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                   minute_lock_key(minute, SLICES_LOCK_CLASS))


def stale_slices(cursor: Any, minute: int, revision: int, names: Sequence[str]) -> list[str]:
    """The slices of ``names`` whose rows for ``minute`` are older than ``revision``."""
    cursor.execute("""
        SELECT n FROM unnest(%(names)s::text[]) AS n
        WHERE NOT EXISTS (SELECT 1 FROM agg.slice_minutes m
                          WHERE m.minute = to_timestamp(%(m)s) AND m.slice = n
                            AND m.revision >= %(r)s)
        ORDER BY n
    """, {"names": list(names), "m": minute, "r": revision})
    return [str(name) for (name,) in cursor.fetchall()]


def set_work_mem(cursor: Any, megabytes: int) -> None:
    """work_mem for the grouping sets, and no JIT, until the transaction ends.

    The grouping sets hash every (value, ad) of the minute; JIT compiled the earlier
    statement for about 2 s of its 7 (docs/benchmarks.md, "Slices at close"), more
    than it saves on one scan of a minute.
    """
    cursor.execute("SELECT set_config('work_mem', %s, true), set_config('jit', 'off', true)",
                   (f"{megabytes}MB",))


def write(cursor: Any, slices: Sequence[Slice], minute: int, revision: int,
          names: Sequence[str]) -> None:
    """Replace ``minute``'s rows of the slices ``names`` with raw's, as ``revision``, and
    add the change, new minus old, to the slice rollups of the minute's hour and day
    where they are built for the slice (stores/slice_rollups.py: the marks are read in
    this statement, after the caller took the minute's slices lock, which is what
    makes a concurrent build and this write count the minute once). An unbuilt hour
    costs nothing here.

    One statement: the old rows are deleted first (the insert waits on a one-time
    filter over the delete), so the new rows of the same keys insert without
    conflict, and both sides of the difference come from the same statement.
    """
    params = {"s": minute, "e": minute, "m": minute, "r": revision, "names": list(names)}
    cursor.execute(f"""
        WITH old_rows AS (
            DELETE FROM agg.slice_values
            WHERE minute = to_timestamp(%(m)s) AND slice = ANY(%(names)s::text[])
            RETURNING slice, value, ad_ids, ad_clicks
        ), computed AS MATERIALIZED ({computed_sql(slices)}
        ), new_rows AS (
            INSERT INTO agg.slice_values (minute, slice, value, revision, clicks,
                                          distinct_ads, ad_ids, ad_clicks)
            SELECT minute, slice, value, %(r)s, clicks, distinct_ads, ad_ids, ad_clicks
            FROM computed
            WHERE slice = ANY(%(names)s::text[]) AND (SELECT count(*) FROM old_rows) >= 0
            ORDER BY slice, value
            RETURNING slice, value, ad_ids, ad_clicks
        ), revisions AS (
            INSERT INTO agg.slice_minutes AS t (minute, slice, revision, clicks, computed_at)
            SELECT to_timestamp(%(m)s), n, %(r)s,
                   coalesce((SELECT sum(clicks) FROM computed WHERE slice = n), 0), now()
            FROM unnest(%(names)s::text[]) AS n ORDER BY n
            ON CONFLICT (minute, slice) DO UPDATE
            SET revision = excluded.revision, clicks = excluded.clicks,
                computed_at = excluded.computed_at
        ){slice_rollups.WRITER_STEPS}""", params)
    slice_rollups.drop_zeros(cursor, minute, cursor.fetchone())


def compare(cursor: Any, slices: Sequence[Slice], start: int, end: int,
            retry_seconds: float) -> list[SliceFinding]:
    """Every checkable minute of [start, end] whose slices differ from raw, in one snapshot.

    Skipped as reconciliation skips a minute's per-ad rows (stores/reconciliation_runs.py):
    not closed, marked late, or a newer revision started less than ``retry_seconds`` ago.
    """
    cursor.execute(f"""
        WITH computed AS MATERIALIZED ({computed_sql(slices)}
        ), stored AS (
            SELECT minute, slice, value, clicks, distinct_ads, ad_ids, ad_clicks
            FROM agg.slice_values
            WHERE minute BETWEEN to_timestamp(%(s)s) AND to_timestamp(%(e)s)
              AND slice = ANY(%(names)s::text[])
        ), differing AS (
            SELECT minute, count(*) AS n FROM computed c FULL JOIN stored s
                USING (minute, slice, value)
            WHERE c.clicks IS DISTINCT FROM s.clicks OR c.ad_ids IS DISTINCT FROM s.ad_ids
               OR c.ad_clicks IS DISTINCT FROM s.ad_clicks
               OR c.distinct_ads IS DISTINCT FROM s.distinct_ads
            GROUP BY minute
        ), missing AS (
            SELECT c.minute, count(*) AS n
            FROM agg.minute_closes c CROSS JOIN unnest(%(names)s::text[]) AS n
            WHERE c.minute BETWEEN to_timestamp(%(s)s) AND to_timestamp(%(e)s)
              AND c.published_revision IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM agg.slice_minutes m
                              WHERE m.minute = c.minute AND m.slice = n
                                AND m.revision >= c.published_revision)
            GROUP BY c.minute
        ), found AS (
            SELECT coalesce(d.minute, m.minute) AS minute, coalesce(d.n, 0) AS differing,
                   coalesce(m.n, 0) AS missing
            FROM differing d FULL JOIN missing m USING (minute)
        )
        SELECT extract(epoch FROM f.minute)::bigint, f.differing, f.missing FROM found f
        WHERE f.minute <= (SELECT closed_through FROM agg.watermark WHERE id = 1)
          AND NOT EXISTS (SELECT 1 FROM agg.late_minutes l WHERE l.minute = f.minute)
          AND NOT EXISTS (
              SELECT 1 FROM agg.minute_closes c
              WHERE c.minute = f.minute
                AND c.started_revision > coalesce(
                    (SELECT min(m.revision) FROM agg.slice_minutes m
                     WHERE m.minute = f.minute AND m.slice = ANY(%(names)s::text[])), 0)
                AND greatest(c.requested_at, c.published_at)
                    > now() - make_interval(secs => %(retry)s))
        ORDER BY 1
    """, {"s": start, "e": end, "names": slice_names(slices), "retry": retry_seconds})
    return [SliceFinding(int(m), int(d), int(n)) for m, d, n in cursor.fetchall()]


def record_findings(cursor: Any, run_id: int, findings: Sequence[SliceFinding],
                    fixed: Sequence[bool]) -> None:
    """Record each minute whose slices differed with whether they were recomputed."""
    for finding, ok in zip(findings, fixed, strict=True):
        cursor.execute("""
                INSERT INTO agg.reconciliation_slice_findings (run_id, minute,
                    differing_values, missing_slices, fixed)
                VALUES (%s, to_timestamp(%s), %s, %s, %s)
            """, (run_id, finding.minute, finding.differing_values, finding.missing_slices, ok))


def forced_revision(cursor: Any) -> int:
    """A revision newer than any claimed so far, for reconciliation's recompute."""
    cursor.execute("SELECT nextval('agg.revision_seq')")
    return int(cursor.fetchone()[0])
