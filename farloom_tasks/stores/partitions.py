"""Partitions of raw.ad_clicks, agg.ad_clicks_per_minute and agg.slice_values (adapter).

Every partition is made by the database function ``raw.ensure_partition``
(migration 0006), which serialises its callers per table and records each
partition in ``raw.partitions``. This module calls it and keeps a per-process
cache of the ranges known to exist. Reading the ledger, detaching and dropping
partitions for retention is stores/partition_drops.py's.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.errors

from farloom_tasks.core.partitions import HOUR, PartitionRange
from farloom_tasks.stores.db import Engine, OwnedConnection

RAW_CLICKS = "raw.ad_clicks"
MINUTE_COUNTS = "agg.ad_clicks_per_minute"

# SQLSTATE raw.ensure_partition raises for a range retention dropped.
DROPPED_SQLSTATE = "FL001"


@dataclass(frozen=True)
class PartitionedTable:
    """A partitioned table and how its partitions are made."""

    parent: str
    unique_columns: str | None  # the per-partition dedup key, if any
    storage: str | None  # storage parameters of each partition


RAW = PartitionedTable(RAW_CLICKS, unique_columns="click_id", storage=None)
# Half-full pages, as migration 0005 gave the unpartitioned table: a new revision
# of a minute then rewrites its rows in place (heap-only tuples).
MINUTES = PartitionedTable(MINUTE_COUNTS, unique_columns=None, storage="fillfactor = 50")
# A minute's slice rows are replaced whole by a new revision (stores/slices.py), and
# kept and dropped with the per-minute counts (FARLOOM_MINUTE_PARTITION_HOURS).
SLICE_VALUES = "agg.slice_values"
SLICES = PartitionedTable(SLICE_VALUES, unique_columns=None, storage=None)


def attached_throughout_sql(parent: str) -> str:
    """A SQL condition, with ``{lo}`` and ``{hi}`` left to format: every partition of
    ``parent`` overlapping [lo, hi) is still attached. A detached or dropped one would
    read as minutes without clicks, so rollup checks and builds skip such periods."""
    return f"""
NOT EXISTS (
    SELECT 1 FROM raw.partitions p
    WHERE p.parent = '{parent}' AND p.range_start < {{hi}} AND p.range_end > {{lo}}
      AND (p.dropped_at IS NOT NULL OR NOT EXISTS (
          SELECT 1 FROM pg_inherits i
          WHERE i.inhrelid = to_regclass(p.partition_name)
            AND i.inhparent = '{parent}'::regclass)))
"""


class PartitionDropped(Exception):
    """A click or count belongs to a range whose partition retention dropped."""


def ensure(cursor: Any, table: PartitionedTable, moment: float, length_seconds: int, *,
           restore: bool = False) -> str:
    """The name of ``table``'s partition holding ``moment``, made if missing.

    Run it in a transaction of its own and commit promptly: making a partition
    holds the table's partition lock until the commit. Raises PartitionDropped
    for a range retention dropped (unless ``restore``).
    """
    cursor.execute("SAVEPOINT ensure_partition")
    try:
        cursor.execute(
            "SELECT raw.ensure_partition(%s, to_timestamp(%s), make_interval(secs => %s), "
            "%s, %s, %s)",
            (table.parent, moment, length_seconds, table.unique_columns, table.storage, restore))
    except psycopg2.Error as exc:
        cursor.execute("ROLLBACK TO SAVEPOINT ensure_partition")
        if exc.pgcode == DROPPED_SQLSTATE:
            raise PartitionDropped(exc.pgerror.strip() if exc.pgerror else str(exc)) from exc
        raise
    name = str(cursor.fetchone()[0])
    cursor.execute("RELEASE SAVEPOINT ensure_partition")
    return name


class PartitionCache:
    """The partitions one process knows exist, so that a write makes one only on a miss.

    A partition is never dropped while it can still receive writes (retention
    refuses clicks well before, core.partitions.acceptance_floor), so a cached
    range stays valid for the life of the process.
    """

    def __init__(self, engine: Engine, table: PartitionedTable, length_seconds: int) -> None:
        self.table = table
        self.length_seconds = length_seconds
        self._db = OwnedConnection(engine)
        self._known: list[PartitionRange] = []

    def close(self) -> None:
        self._db.close()

    def forget(self) -> None:
        """Look every range up again on its next use (after retention dropped one)."""
        self._known = []

    def ensure_for(self, moments: Sequence[float]) -> int:
        """Make sure a partition holds each of ``moments``; returns how many were looked up.

        Raises PartitionDropped if one of them falls in a dropped range.
        """
        known = self._known
        # A batch almost always falls in the partition of its previous batch.
        if not moments or (known and known[-1].holds(min(moments))
                           and known[-1].holds(max(moments))):
            return 0
        # Looked up by the moments themselves, not by the starts the length gives them:
        # after a change of length a new partition is narrowed to the gap between
        # older ones, so the partition made for a start may not hold a later moment.
        missing = sorted({m for m in moments if not any(r.holds(m) for r in known)})
        # One lookup can answer for many moments; look up again only what it missed.
        looked_up = 0
        for moment in missing:
            if any(r.holds(moment) for r in self._known):
                continue
            found = self._db.run(functools.partial(self._lookup, moment=moment))
            # The one found last is checked first next time.
            self._known = [r for r in self._known if r != found] + [found]
            looked_up += 1
        return looked_up

    def _lookup(self, cursor: Any, *, moment: float) -> PartitionRange:
        ensure(cursor, self.table, moment, self.length_seconds)
        cursor.execute("SELECT extract(epoch FROM range_start)::bigint, "
                       "extract(epoch FROM range_end)::bigint FROM raw.partitions "
                       "WHERE parent = %s AND dropped_at IS NULL "
                       "AND range_start <= to_timestamp(%s) AND to_timestamp(%s) < range_end",
                       (self.table.parent, moment, moment))
        start, end = cursor.fetchone()
        return PartitionRange(int(start), int(end))


def length_seconds_of(hours: float) -> int:
    return int(hours * HOUR)
