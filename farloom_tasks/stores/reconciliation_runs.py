"""Reconciliation runs (adapter): the raw-versus-agg comparison and what it found.

``compare`` is one statement, so one snapshot: raw's clicks, distinct ads and
per-ad counts of each minute are compared with ``agg.minute_totals`` and
``agg.ad_clicks_per_minute`` as they stood at one instant. Runs and their
findings are recorded in ``agg.reconciliation_runs`` and
``agg.reconciliation_findings``, and what the rollup check found
(stores/rollups.py) in ``agg.reconciliation_rollup_findings``, and what the slice
rollup check found (stores/slice_rollups.py) in
``agg.reconciliation_slice_rollup_findings``. Every function
runs in the caller's transaction (its cursor).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from farloom_tasks.core.reconciliation import Finding, RollupFinding, SliceRollupFinding

_COMPARE = """
WITH r AS (
    SELECT minute, ad_id, count(*) AS clicks FROM raw.ad_clicks
    WHERE minute BETWEEN to_timestamp(%(s)s) AND to_timestamp(%(e)s) GROUP BY 1, 2
), a AS (
    SELECT minute, ad_id, clicks FROM agg.ad_clicks_per_minute
    WHERE minute BETWEEN to_timestamp(%(s)s) AND to_timestamp(%(e)s)
), per_minute AS (
    SELECT minute,
           coalesce(sum(r.clicks), 0) AS raw_clicks,
           count(r.clicks) AS raw_distinct,
           count(*) FILTER (WHERE r.clicks IS DISTINCT FROM a.clicks) AS differing_ads
    FROM r FULL JOIN a USING (minute, ad_id)
    GROUP BY minute
), t AS (
    SELECT minute, clicks, distinct_ads, revision FROM agg.minute_totals
    WHERE minute BETWEEN to_timestamp(%(s)s) AND to_timestamp(%(e)s)
)
SELECT extract(epoch FROM j.m)::bigint, j.raw_clicks, j.agg_clicks, j.raw_distinct,
       j.agg_distinct, j.differing_ads
FROM (
    SELECT coalesce(p.minute, t.minute) AS m, coalesce(p.raw_clicks, 0) AS raw_clicks,
           t.clicks AS agg_clicks, coalesce(p.raw_distinct, 0) AS raw_distinct,
           t.distinct_ads AS agg_distinct, coalesce(p.differing_ads, 0) AS differing_ads,
           t.revision AS agg_revision
    FROM per_minute p FULL JOIN t ON t.minute = p.minute
) AS j
WHERE j.m <= (SELECT closed_through FROM agg.watermark WHERE id = 1)
  AND NOT EXISTS (SELECT 1 FROM agg.late_minutes l WHERE l.minute = j.m)
  AND NOT EXISTS (
      SELECT 1 FROM agg.minute_closes c
      WHERE c.minute = j.m
        AND c.started_revision > coalesce(j.agg_revision, 0)
        AND greatest(c.requested_at, c.published_at) > now() - make_interval(secs => %(retry)s))
ORDER BY 1
"""


def start_run(cursor: Any, *, trigger: str, start: int, end: int) -> int:
    """Record a run over [start, end]; its run id."""
    cursor.execute("INSERT INTO agg.reconciliation_runs (trigger, range_start, range_end) "
                   "VALUES (%s, to_timestamp(%s), to_timestamp(%s)) RETURNING run_id",
                   (trigger, start, end))
    return int(cursor.fetchone()[0])


def compare(cursor: Any, start: int, end: int, retry_seconds: float) -> list[Finding]:
    """Every checkable minute of [start, end] that has raw rows or agg rows.

    Minutes whose aggregation is under way are left out (not closed yet, marked
    late, or a newer revision started or published less than ``retry_seconds`` ago).
    """
    cursor.execute(_COMPARE, {"s": start, "e": end, "retry": retry_seconds})
    return [Finding(int(m), int(rc), None if ac is None else int(ac), int(rd),
                    None if ad is None else int(ad), int(diff))
            for m, rc, ac, rd, ad, diff in cursor.fetchall()]


def record_findings(cursor: Any, run_id: int, findings: Sequence[Finding],
                    fixed: Sequence[bool]) -> None:
    """Record each differing minute with whether its replay started (``fixed``)."""
    for finding, ok in zip(findings, fixed, strict=True):
        cursor.execute("""
                INSERT INTO agg.reconciliation_findings (run_id, minute, raw_clicks, agg_clicks,
                    raw_distinct_ads, agg_distinct_ads, differing_ads, fixed)
                VALUES (%s, to_timestamp(%s), %s, %s, %s, %s, %s, %s)
            """, (run_id, finding.minute, finding.raw_clicks, finding.agg_clicks,
                  finding.raw_distinct_ads, finding.agg_distinct_ads, finding.differing_ads, ok))


def record_rollup_findings(cursor: Any, run_id: int, findings: Sequence[RollupFinding],
                           fixed: Sequence[bool]) -> None:
    """Record each differing hour or day with whether it was recomputed (``fixed``)."""
    for finding, ok in zip(findings, fixed, strict=True):
        cursor.execute("""
                INSERT INTO agg.reconciliation_rollup_findings (run_id, grain, period,
                    rollup_clicks, minute_clicks, differing_ads, fixed)
                VALUES (%s, %s, to_timestamp(%s), %s, %s, %s, %s)
            """, (run_id, finding.grain, finding.period, finding.rollup_clicks,
                  finding.minute_clicks, finding.differing_ads, ok))


def record_slice_rollup_findings(cursor: Any, run_id: int,
                                 findings: Sequence[SliceRollupFinding],
                                 fixed: Sequence[bool]) -> None:
    """Record each differing (grain, period, slice) with whether it was recomputed."""
    for finding, ok in zip(findings, fixed, strict=True):
        cursor.execute("""
                INSERT INTO agg.reconciliation_slice_rollup_findings (run_id, grain, period,
                    slice, differing_rows, fixed)
                VALUES (%s, %s, to_timestamp(%s), %s, %s, %s)
            """, (run_id, finding.grain, finding.period, finding.slice, finding.differing_rows,
                  ok))


def finish_run(cursor: Any, run_id: int, *, checked: int, differing: int, fixed: int,
               rollups_checked: int = 0, rollups_differing: int = 0,
               rollups_fixed: int = 0) -> None:
    cursor.execute("""
            UPDATE agg.reconciliation_runs SET finished_at = now(), minutes_checked = %s,
                minutes_differing = %s, minutes_fixed = %s, rollups_checked = %s,
                rollups_differing = %s, rollups_fixed = %s WHERE run_id = %s
        """, (checked, differing, fixed, rollups_checked, rollups_differing, rollups_fixed,
              run_id))
