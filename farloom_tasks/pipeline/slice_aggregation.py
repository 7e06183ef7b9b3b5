"""Aggregating one minute's slices from raw, as one revision (the body of aggregate_slices).

Two transactions:
1. its partition of ``agg.slice_values`` is made (stores/partitions.ensure), alone
   and committed at once, because making one holds the table's partition lock;
2. under the minute's slices lock, the slices whose stored revision is older than
   this one are recomputed by one scan of the minute's raw rows and replace their
   old rows (stores/slices.py). If every slice already holds this revision or a
   newer one, nothing is written: the task is safe twice and out of order.

Slices come from raw only, so a Redis loss never touches them, and a later
revision (a late click, a replay) recomputes the minute whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from farloom_tasks.core.dimensions import Slice
from farloom_tasks.stores import partitions
from farloom_tasks.stores import slices as slice_store
from farloom_tasks.stores.db import Engine
from farloom_tasks.stores.transactions import transaction


@dataclass(frozen=True, slots=True)
class SlicesWritten:
    minute: int
    revision: int
    slices: tuple[str, ...]  # the slices rewritten; empty when all were as new already

    def to_json(self) -> dict[str, object]:
        return {"minute": self.minute, "revision": self.revision, "slices": list(self.slices)}


def aggregate(engine: Engine, slices: Sequence[Slice], *, minute: int, revision: int,
              partition_hours: int, work_mem_mb: int) -> SlicesWritten:
    """Write ``minute``'s slices for ``revision`` unless they are that new already."""
    names = slice_store.slice_names(slices)
    with transaction(engine) as cursor:
        partitions.ensure(cursor, partitions.SLICES, minute,
                          partitions.length_seconds_of(partition_hours))
    with transaction(engine) as cursor:
        slice_store.lock_minute(cursor, minute)
        stale = slice_store.stale_slices(cursor, minute, revision, names)
        if stale:
            slice_store.set_work_mem(cursor, work_mem_mb)
            slice_store.write(cursor, slices, minute, revision, stale)
    return SlicesWritten(minute, revision, tuple(stale))


def recompute(engine: Engine, slices: Sequence[Slice], *, minute: int, partition_hours: int,
              work_mem_mb: int) -> SlicesWritten:
    """Recompute ``minute``'s slices at once, whatever revision they hold (reconciliation).

    Its revision comes from ``agg.revision_seq``, so it is newer than every one
    claimed so far, and a later close or replay claims a newer one still.
    """
    with transaction(engine) as cursor:
        revision = slice_store.forced_revision(cursor)
    return aggregate(engine, slices, minute=minute, revision=revision,
                     partition_hours=partition_hours, work_mem_mb=work_mem_mb)
