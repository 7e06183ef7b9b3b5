"""Reconciliation: compare raw with agg over a range of minutes and repair what differs.

One statement (one snapshot) compares, per minute, raw's clicks, distinct ads
and per-ad counts with ``agg.minute_totals`` and ``agg.ad_clicks_per_minute``.
A minute differs when any of those disagree, when raw has clicks and agg has
no totals, or when agg holds clicks or ads that raw does not. Each differing
minute is replayed from raw as a new revision, and the run and its findings
are recorded in ``agg.reconciliation_runs`` / ``agg.reconciliation_findings``
(the statements: ``stores/reconciliation_runs.py``).

Minutes whose aggregation is under way are skipped, because their agg rows
are expected to lag raw: not yet closed, marked late, or with a newer revision
started than agg holds that was started or published less than
``close_retry_seconds`` ago (the closer retries those itself, and the writer
may still be working through its queue). A second run over the same range finds nothing new
once the replays are written, so running it twice is harmless.

The run also checks every hour and day rollup that the range touches against
the sum of its minute rows (``stores/rollups.py``; only hours and days whose
minutes minute retention has not dropped). Unlike a minute, a rollup need not
wait for anything: the writer keeps it equal to its minutes at every commit,
so any difference is damage. Each differing hour or day is recomputed from its
minute rows at once, in a transaction of its own that holds the rows lock of
every minute it covers; the findings go to ``agg.reconciliation_rollup_findings``.

In the same snapshot, each checked minute's slices (``slices``, FARLOOM_DIMENSIONS)
are recomputed from raw and compared per (slice, value) with ``agg.slice_values``:
clicks, distinct ads and both ranked arrays. A minute published at a revision
some slice has no row of (its slice task failed for good) is found too. Each such
minute is handed to ``recompute_slices``, which recomputes it at once at a fresh
revision (a recompute at the minute's own revision would be refused as not
newer); the findings go to ``agg.reconciliation_slice_findings``.

Also in that snapshot, the slice rollups of every *built* hour and day the range
touches (``agg.slice_rollup_periods``; stores/slice_rollups.py; only periods whose
slice partitions minute retention has not dropped), per (grain, period, slice),
whatever FARLOOM_DIMENSIONS says now. Unbuilt periods have no rows to check. Each
run makes the cheap check: the value totals against the sum of their minutes'
``agg.slice_values.clicks`` (rows, not their arrays), and the ad rows summed per
value against the totals. The full per-ad check (an hour's ad rows against its
minutes' unnested arrays, a day's against its hours' rows) is made once per built
period, for at most ``FULL_CHECKS_PER_GRAIN`` of each grain a run, and the period
then marked ``fully_checked_at``. The builder and the writer keep built rollups
equal at every commit, so a difference is damage. Each differing one is recomputed
at once (an hour from its minutes, a day from its hours, which are checked and
repaired first), in its own transaction holding the slices lock of every minute it
covers, before any slice minute is recomputed (a recompute adds its difference to
rollups that are then right, or were rebuilt from what it replaces); the findings
go to ``agg.reconciliation_slice_rollup_findings``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from farloom_tasks.core.dimensions import Slice
from farloom_tasks.core.reconciliation import RunSummary
from farloom_tasks.pipeline import dropped_minutes
from farloom_tasks.stores import reconciliation_runs as runs
from farloom_tasks.stores import rollups, slice_rollups
from farloom_tasks.stores import slices as slice_store
from farloom_tasks.stores.db import Engine
from farloom_tasks.stores.transactions import transaction


def reconcile(engine: Engine, *, start: int, end: int, trigger: str, retry_seconds: float,
              replay: Callable[[int], None], slices: Sequence[Slice] = (),
              recompute_slices: Callable[[int], None] | None = None) -> RunSummary:
    """Compare [start, end], call ``replay(minute)`` for each differing minute, recompute
    each differing rollup and slice rollup, record it all.

    ``replay`` starts a replay from raw (it need not wait for it). A minute whose
    replay raised, or a rollup whose recomputation raised, is recorded with
    ``fixed = false`` and the first error propagates after the run is recorded.
    """
    with transaction(engine) as cursor:
        # A range whose raw rows retention dropped would "repair" its minutes to empty.
        dropped_minutes.refuse_if_dropped(cursor, start, end, action="reconcile")
    with transaction(engine) as cursor:
        run_id = runs.start_run(cursor, trigger=trigger, start=start, end=end)
        checked = runs.compare(cursor, start, end, retry_seconds)
        rollups_checked = rollups.compare(cursor, start, end)
        slice_findings = (slice_store.compare(cursor, slices, start, end, retry_seconds)
                          if recompute_slices is not None else [])
        slice_rollups_checked = slice_rollups.compare(cursor, start, end)
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
    rollups_differing = [f for f in rollups_checked if f.differs]
    rollups_fixed: list[bool] = []
    for rollup in rollups_differing:
        try:
            with transaction(engine) as cursor:
                # None: minute retention dropped some of its minutes since the check.
                rollups_fixed.append(rollups.repair(cursor, rollup.grain, rollup.period)
                                     is not None)
        except Exception as exc:  # recorded below, then re-raised
            rollups_fixed.append(False)
            failure = failure or exc
    slice_rollups_differing = [f for f in slice_rollups_checked if f.differs]
    slice_rollups_fixed: list[bool] = []
    for slice_rollup in slice_rollups_differing:
        try:
            with transaction(engine) as cursor:
                # None: minute retention dropped some of its minutes since the check.
                slice_rollups_fixed.append(slice_rollups.repair(
                    cursor, slice_rollup.grain, slice_rollup.period, slice_rollup.slice)
                    is not None)
        except Exception as exc:  # recorded below, then re-raised
            slice_rollups_fixed.append(False)
            failure = failure or exc
    slices_fixed: list[bool] = []
    for slice_finding in slice_findings:
        try:
            assert recompute_slices is not None  # slice_findings is empty otherwise
            recompute_slices(slice_finding.minute)
            slices_fixed.append(True)
        except Exception as exc:  # recorded below, then re-raised
            slices_fixed.append(False)
            failure = failure or exc
    with transaction(engine) as cursor:
        runs.record_findings(cursor, run_id, differing, fixed)
        slice_store.record_findings(cursor, run_id, slice_findings, slices_fixed)
        runs.record_rollup_findings(cursor, run_id, rollups_differing, rollups_fixed)
        runs.record_slice_rollup_findings(cursor, run_id, slice_rollups_differing,
                                          slice_rollups_fixed)
        runs.finish_run(cursor, run_id, checked=len(checked), differing=len(differing),
                        fixed=sum(fixed), rollups_checked=len(rollups_checked),
                        rollups_differing=len(rollups_differing),
                        rollups_fixed=sum(rollups_fixed))
    if failure is not None:
        raise failure
    return RunSummary(run_id, len(checked), tuple(differing), sum(fixed),
                      len(rollups_checked), tuple(rollups_differing), sum(rollups_fixed),
                      tuple(slice_findings), sum(slices_fixed), len(slice_rollups_checked),
                      tuple(slice_rollups_differing), sum(slice_rollups_fixed))
