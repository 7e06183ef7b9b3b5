"""Partition maintenance: make partitions ahead, drop what retention let go, trim bookkeeping.

``maintain`` is the body of the periodic task ``farloom.maintain_partitions``:

1. Make ahead the partitions of ``raw.ad_clicks``, ``agg.ad_clicks_per_minute`` and
   ``agg.slice_values`` from the current one through now + the clock skew + a margin
   (core.partitions.wanted_ahead), so that ingest almost never makes one while
   a batch waits. Idempotent: ``raw.ensure_partition`` makes each range once
   however many callers ask at the same moment.
2. Raw retention (FARLOOM_RAW_RETENTION_DAYS; 0 keeps everything): every whole
   partition that ended more than that long ago is detached concurrently,
   archived first if FARLOOM_ARCHIVE_DIR is set, and dropped
   (``drop_partition``; the steps and their crash safety:
   stores/partition_drops.py). Ingest refuses clicks that old before they
   reach a partition (core.partitions.acceptance_floor).
3. Minute retention (FARLOOM_MINUTE_RETENTION_DAYS): whole per-minute
   partitions likewise (never a mass DELETE), the slices' with the per-ad ones;
   the hour and day rollups, per ad and per slice, are kept: they outlive their
   minutes, and reconciliation stops checking a period once one of its minute
   partitions is gone. The minutes' top-k, totals and slice
   revision rows and the bookkeeping tables go in
   bounded batches (stores/retention_trims.py), and outbox rows and
   rejected-click ledger rows older than raw's cutoff.

Retention runs under one advisory lock per database: a second run at the same
time makes its partitions and skips the rest. A partition put back by
``farloom archive restore`` is never dropped again by retention.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from farloom_tasks.core import partitions as spans
from farloom_tasks.core.windows import iso
from farloom_tasks.errors import FarloomError
from farloom_tasks.settings import Settings
from farloom_tasks.stores import archive, partition_drops, retention_trims
from farloom_tasks.stores import partitions as partition_store
from farloom_tasks.stores.db import Engine
from farloom_tasks.stores.partitions import (
    MINUTES,
    RAW,
    SLICES,
    PartitionedTable,
    length_seconds_of,
)
from farloom_tasks.stores.transactions import transaction

log = logging.getLogger("farloom.retention")


@dataclass
class MaintenanceReport:
    made_ahead: dict[str, int] = field(default_factory=dict)  # partitions ensured, per table
    dropped: list[str] = field(default_factory=list)  # partition names
    archived: list[str] = field(default_factory=list)  # manifest paths
    trimmed: dict[str, int] = field(default_factory=dict)  # rows deleted, per table
    retention_skipped: bool = False  # another run held the maintenance lock

    def to_json(self) -> dict[str, object]:
        return {"made_ahead": self.made_ahead, "dropped": self.dropped,
                "archived": self.archived, "trimmed": self.trimmed,
                "retention_skipped": self.retention_skipped}


def make_ahead(engine: Engine, settings: Settings, now: float) -> dict[str, int]:
    """Make the partitions of every table that the next hours need; how many per table."""
    made: dict[str, int] = {}
    for table, hours in ((RAW, settings.raw_partition_hours),
                         (MINUTES, settings.minute_partition_hours),
                         (SLICES, settings.minute_partition_hours)):
        length = length_seconds_of(hours)
        starts = spans.wanted_ahead(now, length, settings.max_clock_skew_seconds,
                                    settings.partition_premake_seconds)
        for start in starts:
            # One short transaction per partition: making one holds the table's lock.
            with transaction(engine) as cursor:
                partition_store.ensure(cursor, table, start, length)
        made[table.parent] = len(starts)
    return made


def maintain(engine: Engine, settings: Settings, now: float) -> MaintenanceReport:
    """One maintenance run (see the module docstring)."""
    report = MaintenanceReport(made_ahead=make_ahead(engine, settings, now))
    if settings.raw_retention_days <= 0 and settings.minute_retention_days <= 0:
        return report
    archive_dir = Path(settings.archive_dir).expanduser() if settings.archive_dir else None
    with partition_drops.autocommit_cursor(engine) as cursor:
        if not partition_drops.try_maintenance_lock(cursor):
            log.info("another maintenance run is dropping partitions; skipping retention")
            report.retention_skipped = True
            return report
        try:
            if settings.raw_retention_days > 0:
                _expire(cursor, RAW, now, settings.raw_retention_days, archive_dir, report)
            if settings.minute_retention_days > 0:
                _expire(cursor, MINUTES, now, settings.minute_retention_days, None, report)
                _expire(cursor, SLICES, now, settings.minute_retention_days, None, report)
        finally:
            partition_drops.release_maintenance_lock(cursor)
    if settings.minute_retention_days > 0:
        cutoff = _cutoff(now, settings.minute_retention_days, settings.minute_partition_hours)
        for trim in retention_trims.MINUTE_TRIMS:
            report.trimmed[trim.table] = retention_trims.trim(engine, trim, cutoff)
    if settings.raw_retention_days > 0:
        cutoff = _cutoff(now, settings.raw_retention_days, settings.raw_partition_hours)
        for trim in retention_trims.RAW_TRIMS:
            report.trimmed[trim.table] = retention_trims.trim(engine, trim, cutoff)
    return report


def _cutoff(now: float, retention_days: int, partition_hours: int) -> int:
    """The first minute retention keeps: the start of the partition holding the horizon,
    so rows are trimmed exactly for the minutes whose partitions were dropped."""
    return spans.start_of(now - retention_days * spans.DAY, length_seconds_of(partition_hours))


def _expire(cursor: object, table: PartitionedTable, now: float, retention_days: int,
            archive_dir: Path | None, report: MaintenanceReport) -> None:
    # Drops a crash interrupted are finished first: they are marked dropped already.
    for unfinished in partition_drops.unfinished(cursor, table.parent):
        log.warning("finishing the interrupted drop of %s", unfinished.name)
        _drop(cursor, table.parent, unfinished.name, unfinished.range, archive_dir, report,
              marked=True)
    candidates = partition_drops.live_unrestored(cursor, table.parent)
    for expired in spans.expired(candidates, now, retention_days):
        found = partition_drops.entry(cursor, table.parent, expired.start)
        if found is None or found.dropped_at is not None:
            continue
        _drop(cursor, table.parent, found.name, expired, archive_dir, report, marked=False)


def drop_partition(engine: Engine, parent: str, range_start: int,
                   archive_dir: Path | None) -> MaintenanceReport:
    """Archive (if ``archive_dir``) and drop one partition of ``parent`` now.

    The same steps as retention takes, under the same lock: ``farloom bench
    scale`` measures ingest while this runs. Raises FarloomError if the ledger
    has no live partition of ``parent`` starting at ``range_start``.
    """
    report = MaintenanceReport()
    with partition_drops.autocommit_cursor(engine) as cursor:
        partition_drops.maintenance_lock(cursor)
        try:
            found = partition_drops.entry(cursor, parent, range_start)
            if found is None or found.dropped_at is not None:
                raise FarloomError(f"{parent} has no live partition starting at "
                                   f"{iso(range_start)}")
            _drop(cursor, parent, found.name, found.range, archive_dir, report, marked=False)
        finally:
            partition_drops.release_maintenance_lock(cursor)
    return report


def _drop(cursor: object, parent: str, name: str, span: spans.PartitionRange,
          archive_dir: Path | None, report: MaintenanceReport, *, marked: bool) -> None:
    started = time.monotonic()
    if not marked and not partition_drops.mark_dropping(cursor, parent, span.start):
        return
    partition_drops.detach(cursor, parent, name)
    if archive_dir is not None and partition_drops.table_exists(cursor, name):
        manifest = archive.write_archive(
            cursor, table=parent, partition=name, range_start=span.start,
            range_end=span.end, columns=partition_drops.columns_of(cursor, name),
            archive_dir=archive_dir)
        manifest_path = str(archive.manifest_path_for(archive_dir, parent, span.start,
                                                      span.end))
        partition_drops.record_archive(cursor, parent, span.start, archive_file=manifest_path,
                                       rows=manifest.rows, sha256=manifest.sha256)
        report.archived.append(manifest_path)
    partition_drops.drop_table(cursor, name)
    partition_drops.record_dropped(cursor, parent, span.start)
    report.dropped.append(name)
    log.info("dropped %s [%s, %s) in %.1f s", name, iso(span.start), iso(span.end),
             time.monotonic() - started)
