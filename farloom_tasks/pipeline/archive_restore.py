"""Putting an archived partition back, exactly (``farloom archive restore FILE``).

1. The manifest is read and the data file's sha256 checked against it, before
   anything in the database changes.
2. The partition is made again for exactly the archived range
   (``raw.ensure_partition`` with ``restore``, which alone may make a range
   retention dropped), in a short transaction of its own.
3. In one transaction: the partition must be empty; the rows are COPYed in and
   counted; the ledger row gets ``restored_at``. A count that differs from the
   manifest rolls all of it back.

A restored partition is never dropped by retention again (its ledger row says
it was restored); restoring raw rows does not change agg by itself.

The COPY names the manifest's columns, which are the partition's when it was
archived: an archive made before a migration added a nullable column (0010's
device and owners, 0014's custom ``dimensions``) restores with that column NULL,
and one made since keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from farloom_tasks.core.windows import iso
from farloom_tasks.errors import FarloomError
from farloom_tasks.stores import archive, partition_drops
from farloom_tasks.stores import partitions as partition_store
from farloom_tasks.stores.db import Engine
from farloom_tasks.stores.partitions import MINUTES, RAW, PartitionedTable
from farloom_tasks.stores.transactions import transaction

TABLES = {table.parent: table for table in (RAW, MINUTES)}


class RestoreRefused(FarloomError):
    """The archive cannot be restored as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Restored:
    table: str
    partition: str
    range_start: int
    range_end: int
    rows: int
    sha256: str


def restore(engine: Engine, path: Path) -> Restored:
    """Restore the archive at ``path`` (its manifest or its data file); see the docstring."""
    manifest, data_path = archive.read_manifest(path)
    table = TABLES.get(manifest.table)
    if table is None:
        raise RestoreRefused(f"the archive is of {manifest.table!r}, which Farloom does not "
                             f"partition (only {', '.join(TABLES)})")
    archive.verify_checksum(manifest, data_path)
    span = f"[{iso(manifest.range_start)}, {iso(manifest.range_end)})"
    with transaction(engine) as cursor:
        name = _make_partition(cursor, table, manifest)
    with transaction(engine) as cursor:
        found = partition_drops.entry(cursor, table.parent, manifest.range_start)
        if found is None or (found.range.start, found.range.end) != (
                manifest.range_start, manifest.range_end):
            actual = "none" if found is None else f"[{iso(found.range.start)}, " \
                                                  f"{iso(found.range.end)})"
            raise RestoreRefused(f"{table.parent}'s partition for {span} came out as "
                                 f"{actual}: another partition overlaps the archived range")
        present = partition_drops.rows_in(cursor, name)
        if present:
            raise RestoreRefused(f"the partition {name} {span} already holds {present} rows; "
                                 "restore loads only into an empty partition (was it "
                                 "restored before?)")
        loaded = archive.load_archive(cursor, manifest, data_path, name)
        counted = partition_drops.rows_in(cursor, name)
        if not loaded == counted == manifest.rows:
            raise RestoreRefused(f"loaded {loaded} rows ({counted} counted) but the manifest "
                                 f"says {manifest.rows}; nothing was restored")
        partition_drops.record_restored(cursor, table.parent, manifest.range_start)
    return Restored(table.parent, name, manifest.range_start, manifest.range_end,
                    manifest.rows, manifest.sha256)


def _make_partition(cursor: object, table: PartitionedTable, manifest: archive.Manifest) -> str:
    found = partition_drops.entry(cursor, table.parent, manifest.range_start)
    if (found is not None and found.dropped_at is not None
            and partition_drops.table_exists(cursor, found.name)):
        raise RestoreRefused(f"the drop of {found.name} has not finished (the table still "
                             "exists); let the next maintenance run finish it, then restore")
    length = manifest.range_end - manifest.range_start
    return partition_store.ensure(cursor, table, manifest.range_start, length, restore=True)
