"""Deleting the small per-minute and bookkeeping rows retention outlives (adapter).

Every trim deletes in bounded batches, each its own short transaction, so that
no trim holds many row locks or bloats one transaction: these tables take a
handful of rows per minute, so a run after a long pause still ends quickly,
and ingest and the closer never wait behind it for long.

The per-ad minute rows are not among these: they live in partitions that
retention drops whole (stores/partition_drops.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from farloom_tasks.stores.db import Engine
from farloom_tasks.stores.transactions import transaction

BATCH_ROWS = 5000  # rows one trim transaction deletes at most


@dataclass(frozen=True)
class Trim:
    """Rows of ``table`` older than the cutoff, as ``condition`` says (``%(cutoff)s``)."""

    table: str
    condition: str


# Kept as long as the per-minute results (FARLOOM_MINUTE_RETENTION_DAYS).
MINUTE_TRIMS = (
    Trim("agg.top_ads", "minute < to_timestamp(%(cutoff)s)"),
    Trim("agg.minute_totals", "minute < to_timestamp(%(cutoff)s)"),
    # The revisions of the slice rows whose partitions minute retention dropped.
    Trim("agg.slice_minutes", "minute < to_timestamp(%(cutoff)s)"),
    Trim("agg.minute_closes", "minute < to_timestamp(%(cutoff)s)"),
    Trim("agg.minute_parts", "minute < to_timestamp(%(cutoff)s)"),
    Trim("agg.late_minutes", "minute < to_timestamp(%(cutoff)s)"),
    # Findings go with their run (ON DELETE CASCADE).
    Trim("agg.reconciliation_runs", "range_end < to_timestamp(%(cutoff)s)"),
    # A loss still being repaired is kept whatever its age.
    Trim("agg.redis_losses",
         "repaired_at IS NOT NULL AND window_end < to_timestamp(%(cutoff)s)"),
)
# Kept as long as raw rows (FARLOOM_RAW_RETENTION_DAYS): an outbox row this old
# targets Redis keys that expired long ago. The rejected-click ledger is raw's
# counterpart for invalid traffic, dated by when it was rejected; it is not
# partitioned (migration 0008 says why), so it is trimmed here through its
# index on rejected_at.
RAW_TRIMS = (
    Trim("raw.redis_outbox", "max_minute < to_timestamp(%(cutoff)s)"),
    Trim("raw.rejected_clicks", "rejected_at < to_timestamp(%(cutoff)s)"),
)


def trim(engine: Engine, what: Trim, cutoff: int, batch_rows: int = BATCH_ROWS) -> int:
    """Delete ``what``'s rows older than ``cutoff`` (epoch seconds); returns how many."""
    deleted = 0
    statement = (f"DELETE FROM {what.table} WHERE ctid = ANY(ARRAY("
                 f"SELECT ctid FROM {what.table} WHERE {what.condition} "
                 "LIMIT %(limit)s FOR UPDATE SKIP LOCKED))")
    while True:
        with transaction(engine) as cursor:
            cursor.execute(statement, {"cutoff": cutoff, "limit": batch_rows})
            count = int(cursor.rowcount)
        deleted += count
        if count < batch_rows:
            return deleted
