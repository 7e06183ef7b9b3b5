"""``farloom replay`` and ``farloom reconcile``: recompute minutes through the Celery workers.

Both only enqueue work unless ``--wait`` is given; then they return once every
replayed minute's new revision is committed in ``agg.minute_totals``, or fail
with a message saying what did not happen in time. Workers must be running:
``celery -A farloom_tasks worker`` and ``farloom write-aggregates``.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from tqdm import tqdm

from farloom_tasks.core.windows import iso, parse_minute
from farloom_tasks.errors import FarloomError
from farloom_tasks.pipeline import closing
from farloom_tasks.pipeline.replay import not_due_reason
from farloom_tasks.settings import Settings
from farloom_tasks.stores import close_ledger, db
from farloom_tasks.stores.transactions import transaction

POLL_SECONDS = 0.5


class WaitTimedOut(FarloomError):
    """--wait gave up; the message names what was still missing."""


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    if name == "replay":
        parser.description = (
            "Recompute closed minutes as new revisions through the Celery workers, from\n"
            "Redis or rebuilt from raw.ad_clicks. Needs `celery -A farloom_tasks worker`\n"
            "and `farloom write-aggregates` running.\n\n"
            "example: farloom replay '2026-11-29 14:00' '2026-11-29 14:59' --source raw --wait")
    else:
        parser.description = (
            "Compare raw.ad_clicks with agg.* per minute and per ad over a range, record\n"
            "the run in agg.reconciliation_runs/_findings, and replay every differing\n"
            "minute from raw through the Celery workers.\n\n"
            "example: farloom reconcile 2026-11-29T14:00:00Z 2026-11-29T16:00:00Z --wait")
    when = "RFC 3339 (2026-11-29T14:03:00Z) or 'YYYY-MM-DD HH:MM' (UTC)"
    parser.add_argument("start", metavar="START", help=f"first minute, {when}")
    if name == "replay":
        parser.add_argument("end", metavar="END", nargs="?", default=None,
                            help="last minute, inclusive (default: START)")
        parser.add_argument("--source", choices=("auto", "redis", "raw"), default="auto",
                            help="raw rebuilds the minute's Redis sets from raw.ad_clicks "
                            "first; redis reads them as they are; auto (default) uses Redis "
                            "while the minute's keys are there and complete, raw otherwise")
    else:
        parser.add_argument("end", metavar="END", help="last minute, inclusive")
    parser.add_argument("--wait", action="store_true",
                        help="return only when every replayed minute is committed in agg")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds --wait waits in all (default: 600)")


def _range(args: argparse.Namespace) -> tuple[int, int]:
    start = parse_minute(args.start)
    end = start if args.end is None else parse_minute(args.end)
    if end < start:
        raise ValueError(f"END {iso(end)} is before START {iso(start)}")
    return start, end


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        start, end = _range(args)
    except ValueError as exc:
        print(f"farloom {args.command}: {exc}", file=sys.stderr)
        return 2
    # Imported here: it builds the Celery app, which `farloom --help` does not need.
    from farloom_tasks import tasks

    if args.command == "reconcile":
        return _reconcile(args, settings, start, end, tasks)
    closed_through = _close_due_minutes(settings)
    if closed_through is None or end > closed_through:
        print(f"farloom replay: {not_due_reason(end, settings.grace_seconds)}; "
              "nothing was queued", file=sys.stderr)
        return 2
    _refuse_dropped(settings, start, end)
    chunks = tasks.replay_chunks(start, end)
    pending = {chunk[0]: tasks.replay_minutes.delay(chunk, args.source) for chunk in chunks}
    count = sum(len(chunk) for chunk in chunks)
    print(f"queued {count} minute(s) {iso(start)}..{iso(end)} from {args.source}")
    if args.wait:
        _wait(settings, pending, time.monotonic() + args.timeout)
    return 0


def _reconcile(args: argparse.Namespace, settings: Settings, start: int, end: int,
               tasks: Any) -> int:
    from farloom_tasks.core.dimensions import parse_dimensions
    from farloom_tasks.pipeline import reconcile, slice_aggregation

    pending: dict[int, Any] = {}
    slices = parse_dimensions(settings.dimensions)

    def replay(minute: int) -> None:
        pending[minute] = tasks.replay_minute.delay(minute, "raw")

    engine = db.make_engine(settings.database_url, pool_size=1)

    def recompute_slices(minute: int) -> None:
        slice_aggregation.recompute(engine, slices, minute=minute,
                                    partition_hours=settings.minute_partition_hours,
                                    work_mem_mb=settings.slice_work_mem_mb)

    try:
        summary = reconcile.reconcile(engine, start=start, end=end, trigger="cli",
                                      retry_seconds=settings.close_retry_seconds, replay=replay,
                                      slices=slices, recompute_slices=recompute_slices)
    finally:
        engine.dispose()
    print(f"run {summary.run_id}: checked {summary.minutes_checked} minute(s), "
          f"{len(summary.findings)} differed, {summary.minutes_fixed} replayed from raw")
    for finding in summary.findings:
        print(f"  {iso(finding.minute)}: raw {finding.raw_clicks} clicks / "
              f"{finding.raw_distinct_ads} ads, agg {finding.agg_clicks} / "
              f"{finding.agg_distinct_ads}, {finding.differing_ads} ad(s) differ")
    print(f"rollups: checked {summary.rollups_checked} hour(s) and day(s), "
          f"{len(summary.rollup_findings)} differed from their minutes, "
          f"{summary.rollups_fixed} recomputed")
    for rollup in summary.rollup_findings:
        print(f"  {rollup.grain} {iso(rollup.period)}: total {rollup.rollup_clicks}, minutes "
              f"{rollup.minute_clicks}, {rollup.differing_ads} ad(s) differ")
    print(f"slices: {len(summary.slice_findings)} minute(s) differed from raw, "
          f"{summary.slices_fixed} recomputed")
    for found in summary.slice_findings:
        print(f"  {iso(found.minute)}: {found.differing_values} value(s) differ, "
              f"{found.missing_slices} slice(s) missing")
    print(f"slice rollups: checked {summary.slice_rollups_checked} (hour or day, slice) "
          f"pair(s), {len(summary.slice_rollup_findings)} differed from their minutes, "
          f"{summary.slice_rollups_fixed} recomputed")
    for found_rollup in summary.slice_rollup_findings:
        print(f"  {found_rollup.grain} {iso(found_rollup.period)} {found_rollup.slice}: total "
              f"{found_rollup.rollup_clicks}, minutes {found_rollup.minute_clicks}, "
              f"{found_rollup.differing_rows} row(s) differ")
    if args.wait and pending:
        _wait(settings, pending, time.monotonic() + args.timeout)
    return 0


def _wait(settings: Settings, pending: dict[int, Any], deadline: float) -> None:
    """Wait for each task in ``pending`` (keyed by its first minute), then for agg."""
    revisions: dict[int, int] = {}
    for minute, result in tqdm(pending.items(), desc="replay tasks done", unit="task",
                               file=sys.stderr):
        try:
            revisions.update(_revisions(result.get(
                timeout=max(0.1, deadline - time.monotonic()))))
        except CeleryTimeout:
            raise WaitTimedOut(
                f"no Celery worker finished the replay of {iso(minute)} in time; is "
                "`celery -A farloom_tasks worker` running against this broker?") from None
        except FarloomError:
            raise
        except Exception as exc:
            raise WaitTimedOut(f"the replay of {iso(minute)} failed: {exc}") from None
    engine = db.make_engine(settings.database_url, pool_size=1)
    try:
        with tqdm(total=len(revisions), desc="committed in agg", unit="min",
                  file=sys.stderr) as bar:
            while True:
                missing = _uncommitted(engine, revisions)
                bar.n = len(revisions) - len(missing)
                bar.refresh()
                if not missing:
                    return
                if time.monotonic() > deadline:
                    raise WaitTimedOut(
                        f"{len(missing)} replayed minute(s) are not in agg.minute_totals yet, "
                        f"first {iso(min(missing))}; is `farloom write-aggregates` running?")
                time.sleep(POLL_SECONDS)
    finally:
        engine.dispose()


def _revisions(outcome: dict[str, Any]) -> dict[int, int]:
    """{minute: revision} from replay_minute's or replay_minutes' result."""
    if "revision" in outcome:
        return {int(outcome["minute"]): int(outcome["revision"])}
    return {int(minute): int(revision) for minute, revision in outcome.items()}


def _close_due_minutes(settings: Settings) -> int | None:
    """The watermark, after closing every minute past its deadline (beat's rule), so
    that minutes beat never saw (a fresh install, an import of old logs) replay."""
    engine = db.make_engine(settings.database_url, pool_size=1)
    try:
        with transaction(engine) as cursor:
            return closing.close_due_now(cursor, time.time(), settings.grace_seconds)
    finally:
        engine.dispose()


def _refuse_dropped(settings: Settings, start: int, end: int) -> None:
    """Raise (before queueing anything) if retention dropped rows of these minutes."""
    from farloom_tasks.pipeline import dropped_minutes

    engine = db.make_engine(settings.database_url, pool_size=1)
    try:
        with transaction(engine) as cursor:
            dropped_minutes.refuse_if_dropped(cursor, start, end, action="replay")
    finally:
        engine.dispose()


def _uncommitted(engine: Any, revisions: dict[int, int]) -> list[int]:
    with transaction(engine) as cursor:
        return close_ledger.uncommitted_minutes(cursor, revisions)
