"""The per-minute advisory locks of ``agg`` (adapter): their key space and how to take them.

Two locks per minute, both transaction-scoped:
- *rows* (``ROWS_LOCK_CLASS``): a minute's per-ad rows, and so the share of the
  hour and day rollups those rows make up. The aggregated writer holds it shared
  while it upserts a part and exclusively while it finalises; reconciliation holds
  it exclusively for every minute of an hour or day whose rollups it recomputes.
- *book* (``BOOK_LOCK_CLASS``): a minute's top and part bookkeeping.
- *slices* (``SLICES_LOCK_CLASS``): a minute's slice rows (stores/slices.py), and so
  their share of the slice rollups; the slice writer holds it, and reconciliation
  holds it for every minute of an hour or day whose slice rollups it recomputes.

Whoever takes several takes rows before book, and rows locks in minute order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

# The two-key advisory lock space (classid, objid) never meets the one-key
# watermark lock: PostgreSQL tells them apart by objsubid.
ROWS_LOCK_CLASS = 0x46_4C_41  # "FLA": a minute's per-ad rows
BOOK_LOCK_CLASS = 0x46_4C_42  # "FLB": a minute's top and part bookkeeping
SLICES_LOCK_CLASS = 0x46_4C_53  # "FLS": a minute's slice rows
_INT4_MAX = 2**31 - 1

_LOCK_EACH = """
SELECT count(pg_advisory_xact_lock(%s, k))
FROM unnest(%s::int[]) WITH ORDINALITY AS x(k, i)
"""


def minute_lock_key(minute: int, lock_class: int = ROWS_LOCK_CLASS) -> tuple[int, int]:
    # Two minutes sharing a key (every 4,000 years) merely queue behind each other.
    return lock_class, (minute // 60) % (_INT4_MAX + 1)


def lock_rows_exclusively(cursor: Any, minutes: Sequence[int]) -> None:
    """Hold the rows lock of every minute in ``minutes`` until the transaction ends.

    Taken in minute order, in one statement. Waits for every writer of those
    minutes in flight; no writer changes their per-ad rows until the commit.
    """
    _lock_each(cursor, ROWS_LOCK_CLASS, minutes)


def lock_slices_exclusively(cursor: Any, minutes: Sequence[int]) -> None:
    """Hold the slices lock of every minute in ``minutes`` until the transaction ends,
    taken in minute order in one statement: no slice writer of those minutes runs
    until the commit."""
    _lock_each(cursor, SLICES_LOCK_CLASS, minutes)


def _lock_each(cursor: Any, lock_class: int, minutes: Sequence[int]) -> None:
    keys = [minute_lock_key(m, lock_class)[1] for m in sorted(minutes)]
    cursor.execute(_LOCK_EACH, (lock_class, "{" + ",".join(map(str, keys)) + "}"))
    cursor.fetchone()
