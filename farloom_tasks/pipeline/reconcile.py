"""Reconciliation: compare raw with agg over a range of minutes and repair what differs.

One statement (one snapshot) compares, per minute, raw's clicks, distinct ads
and per-ad counts with ``agg.minute_totals`` and ``agg.ad_clicks_per_minute``.
A minute differs when any of those disagree, when raw has clicks and agg has
no totals, or when agg holds clicks or ads that raw does not. Each differing
minute is replayed from raw as a new revision, and the run and its findings
are recorded in ``agg.reconciliation_runs`` / ``agg.reconciliation_findings``.

Minutes whose aggregation is under way are skipped, because their agg rows
are expected to lag raw: not yet closed, marked late, or with a newer revision
started than agg holds that was started or published less than
``close_retry_seconds`` ago (the closer retries those itself, and the writer
may still be working through its queue). A second run over the same range finds nothing new
once the replays are written, so running it twice is harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from farloom_tasks.stores.transactions import transaction

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


@dataclass(frozen=True, slots=True)
class Finding:
    minute: int
    raw_clicks: int
    agg_clicks: int | None
    raw_distinct_ads: int
    agg_distinct_ads: int | None
    differing_ads: int

    @property
    def differs(self) -> bool:
        if self.agg_clicks is None:
            return self.raw_clicks > 0
        return (self.differing_ads > 0 or self.raw_clicks != self.agg_clicks
                or self.raw_distinct_ads != self.agg_distinct_ads)


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_id: int
    minutes_checked: int
    findings: tuple[Finding, ...]
    minutes_fixed: int


def compare(cursor: Any, start: int, end: int, retry_seconds: float) -> list[Finding]:
    """Every checkable minute of [start, end] that has raw rows or agg rows."""
    cursor.execute(_COMPARE, {"s": start, "e": end, "retry": retry_seconds})
    return [Finding(int(m), int(rc), None if ac is None else int(ac), int(rd),
                    None if ad is None else int(ad), int(diff))
            for m, rc, ac, rd, ad, diff in cursor.fetchall()]


def reconcile(engine: Engine, *, start: int, end: int, trigger: str, retry_seconds: float,
              replay: Callable[[int], None]) -> RunSummary:
    """Compare [start, end], call ``replay(minute)`` for each differing minute, record it all.

    ``replay`` starts a replay from raw (it need not wait for it). A minute whose
    replay raised is recorded with ``fixed = false`` and the error propagates
    after the run is recorded.
    """
    with transaction(engine) as cursor:
        cursor.execute("INSERT INTO agg.reconciliation_runs (trigger, range_start, range_end) "
                       "VALUES (%s, to_timestamp(%s), to_timestamp(%s)) RETURNING run_id",
                       (trigger, start, end))
        run_id = int(cursor.fetchone()[0])
        checked = compare(cursor, start, end, retry_seconds)
    differing = [f for f in checked if f.differs]
    fixed: list[bool] = []
    failure: Exception | None = None
    for finding in differing:
        try:
            replay(finding.minute)
            fixed.append(True)
        except Exception as exc:  # recorded below, then re-raised
            fixed.append(False)
            failure = failure or exc
    with transaction(engine) as cursor:
        for finding, ok in zip(differing, fixed, strict=True):
            cursor.execute("""
                INSERT INTO agg.reconciliation_findings (run_id, minute, raw_clicks, agg_clicks,
                    raw_distinct_ads, agg_distinct_ads, differing_ads, fixed)
                VALUES (%s, to_timestamp(%s), %s, %s, %s, %s, %s, %s)
            """, (run_id, finding.minute, finding.raw_clicks, finding.agg_clicks,
                  finding.raw_distinct_ads, finding.agg_distinct_ads, finding.differing_ads, ok))
        cursor.execute("""
            UPDATE agg.reconciliation_runs SET finished_at = now(), minutes_checked = %s,
                minutes_differing = %s, minutes_fixed = %s WHERE run_id = %s
        """, (len(checked), len(differing), sum(fixed), run_id))
    if failure is not None:
        raise failure
    return RunSummary(run_id, len(checked), tuple(differing), sum(fixed))
