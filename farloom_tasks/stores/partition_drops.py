"""Dropping partitions for retention (adapter): the ledger marks, DETACH CONCURRENTLY, DROP.

A drop goes, on one autocommit connection (``DETACH ... CONCURRENTLY`` cannot
run inside a transaction block):

1. ``mark_dropping``: the ledger row gets ``dropped_at``. From then on
   ``raw.ensure_partition`` refuses the range, and replay and reconciliation
   name the drop.
2. ``detach``: ``ALTER TABLE parent DETACH PARTITION p CONCURRENTLY``, which
   waits for the queries using the parent but never blocks an insert into
   another partition (it takes SHARE UPDATE EXCLUSIVE). An interrupted detach
   is finished with ``DETACH ... FINALIZE``.
3. The caller archives the detached table (nothing can write to it any more)
   and records it (``record_archive``).
4. ``drop_table``, then ``record_dropped`` sets the final ``dropped_at``.

A crash anywhere leaves a ledger row marked dropped whose table still exists:
``unfinished`` lists those, and the next run carries on from step 2.
Maintenance runs hold ``MAINTENANCE_LOCK`` (a session advisory lock), so two
never drop at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from farloom_tasks.core.partitions import PartitionRange
from farloom_tasks.stores.db import Engine, translated_errors

MAINTENANCE_LOCK = (4607056, 2)  # ("FLP", 2): one maintenance run at a time per database


@dataclass(frozen=True)
class LedgerEntry:
    """A partition as the ledger records it."""

    parent: str
    name: str
    range: PartitionRange
    dropped_at: float | None
    archive_file: str | None
    archived_rows: int | None
    archive_sha256: str | None
    restored_at: float | None


_COLUMNS = (
    "parent, partition_name, extract(epoch FROM range_start)::bigint, "
    "extract(epoch FROM range_end)::bigint, extract(epoch FROM dropped_at), archive_file, "
    "archived_rows, archive_sha256, extract(epoch FROM restored_at)")


def _entries(rows: list[tuple[Any, ...]]) -> list[LedgerEntry]:
    return [LedgerEntry(parent, name, PartitionRange(int(start), int(end)),
                        None if dropped is None else float(dropped), archive,
                        None if archived is None else int(archived), sha,
                        None if restored is None else float(restored))
            for parent, name, start, end, dropped, archive, archived, sha, restored in rows]


@contextlib.contextmanager
def autocommit_cursor(engine: Engine) -> Iterator[Any]:
    """A psycopg2 cursor on a connection of its own in autocommit mode."""
    with translated_errors(), engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        driver: Any = conn.connection.dbapi_connection
        with driver.cursor() as cursor:
            yield cursor


def try_maintenance_lock(cursor: Any) -> bool:
    cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", MAINTENANCE_LOCK)
    return bool(cursor.fetchone()[0])


def maintenance_lock(cursor: Any) -> None:
    cursor.execute("SELECT pg_advisory_lock(%s, %s)", MAINTENANCE_LOCK)


def release_maintenance_lock(cursor: Any) -> None:
    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", MAINTENANCE_LOCK)


def live_unrestored(cursor: Any, parent: str) -> list[PartitionRange]:
    """``parent``'s live partitions retention may drop (not put back by a restore)."""
    cursor.execute(
        "SELECT extract(epoch FROM range_start)::bigint, extract(epoch FROM range_end)::bigint "
        "FROM raw.partitions WHERE parent = %s AND dropped_at IS NULL AND restored_at IS NULL "
        "ORDER BY range_start", (parent,))
    return [PartitionRange(int(start), int(end)) for start, end in cursor.fetchall()]


def entry(cursor: Any, parent: str, range_start: int) -> LedgerEntry | None:
    cursor.execute(f"SELECT {_COLUMNS} FROM raw.partitions "
                   "WHERE parent = %s AND range_start = to_timestamp(%s)", (parent, range_start))
    found = _entries(cursor.fetchall())
    return found[0] if found else None


def entries(cursor: Any, parent: str | None = None) -> list[LedgerEntry]:
    """Every ledger row (of ``parent``, if given), oldest range first."""
    cursor.execute(f"SELECT {_COLUMNS} FROM raw.partitions "
                   "WHERE %(parent)s::text IS NULL OR parent = %(parent)s "
                   "ORDER BY parent, range_start", {"parent": parent})
    return _entries(cursor.fetchall())


def dropped_between(cursor: Any, parent: str, first: int, last: int) -> list[LedgerEntry]:
    """``parent``'s dropped partitions overlapping the minutes [first, last], oldest first."""
    cursor.execute(f"SELECT {_COLUMNS} FROM raw.partitions WHERE parent = %s "
                   "AND dropped_at IS NOT NULL AND range_start <= to_timestamp(%s) "
                   "AND range_end > to_timestamp(%s) ORDER BY range_start",
                   (parent, last, first))
    return _entries(cursor.fetchall())


def unfinished(cursor: Any, parent: str) -> list[LedgerEntry]:
    """Partitions marked dropped whose table still exists (a drop that was interrupted)."""
    cursor.execute(f"SELECT {_COLUMNS} FROM raw.partitions WHERE parent = %s "
                   "AND dropped_at IS NOT NULL AND to_regclass(partition_name) IS NOT NULL "
                   "ORDER BY range_start", (parent,))
    return _entries(cursor.fetchall())


def mark_dropping(cursor: Any, parent: str, range_start: int) -> bool:
    """Mark a live partition dropped in the ledger; False if it is not live (any more)."""
    cursor.execute("UPDATE raw.partitions SET dropped_at = now() WHERE parent = %s "
                   "AND range_start = to_timestamp(%s) AND dropped_at IS NULL",
                   (parent, range_start))
    return bool(cursor.rowcount == 1)


def detach(cursor: Any, parent: str, partition: str) -> None:
    """Detach ``partition`` from ``parent`` without blocking inserts elsewhere (autocommit)."""
    cursor.execute("SELECT i.inhdetachpending FROM pg_inherits i "
                   "WHERE i.inhrelid = to_regclass(%s) AND i.inhparent = to_regclass(%s)",
                   (partition, parent))
    row = cursor.fetchone()
    if row is None:
        return  # already detached
    mode = "FINALIZE" if row[0] else "CONCURRENTLY"
    cursor.execute(f"ALTER TABLE {_qualified(parent)} DETACH PARTITION "
                   f"{_qualified(partition)} {mode}")


def columns_of(cursor: Any, table: str) -> list[str]:
    """``table``'s columns in their order."""
    cursor.execute("SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                   "AND attnum > 0 AND NOT attisdropped ORDER BY attnum", (table,))
    return [str(name) for (name,) in cursor.fetchall()]


def record_archive(cursor: Any, parent: str, range_start: int, *, archive_file: str,
                   rows: int, sha256: str) -> None:
    cursor.execute("UPDATE raw.partitions SET archive_file = %s, archived_rows = %s, "
                   "archive_sha256 = %s WHERE parent = %s AND range_start = to_timestamp(%s)",
                   (archive_file, rows, sha256, parent, range_start))


def drop_table(cursor: Any, partition: str) -> None:
    cursor.execute(f"DROP TABLE IF EXISTS {_qualified(partition)}")


def record_dropped(cursor: Any, parent: str, range_start: int) -> None:
    cursor.execute("UPDATE raw.partitions SET dropped_at = now() WHERE parent = %s "
                   "AND range_start = to_timestamp(%s)", (parent, range_start))


def rows_in(cursor: Any, partition: str) -> int:
    cursor.execute(f"SELECT count(*) FROM {_qualified(partition)}")
    return int(cursor.fetchone()[0])


def record_restored(cursor: Any, parent: str, range_start: int) -> None:
    cursor.execute("UPDATE raw.partitions SET restored_at = now(), dropped_at = NULL "
                   "WHERE parent = %s AND range_start = to_timestamp(%s)", (parent, range_start))


def table_exists(cursor: Any, name: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
    return bool(cursor.fetchone()[0])


def _qualified(name: str) -> str:
    """``schema.table`` quoted (names come from the ledger and constants, never input)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split(".", 1))

