"""Refusing to replay or reconcile minutes whose rows retention dropped.

A replay from raw of a minute whose raw partition was dropped would publish
that minute as empty, and one whose per-minute partition was dropped could not
be written (and would change the rollups by the whole minute). Both are
refused before anything is claimed or published, with the drop's time and the
archive file, if any, in the message.
"""

from __future__ import annotations

from farloom_tasks.core.replay_source import ReplayRefused
from farloom_tasks.core.windows import iso
from farloom_tasks.stores import partition_drops
from farloom_tasks.stores.partitions import MINUTE_COUNTS, RAW_CLICKS


class MinutesDropped(ReplayRefused):
    """Raw or per-minute rows of the minutes asked for were dropped by retention."""


def refuse_if_dropped(cursor: object, first: int, last: int, *, action: str) -> None:
    """Raise MinutesDropped if retention dropped rows of any minute in [first, last].

    ``action`` names what is refused ("replay", "reconcile") in the message.
    """
    raw = partition_drops.dropped_between(cursor, RAW_CLICKS, first, last)
    if raw:
        drop = raw[0]
        where = (f"; archived in {drop.archive_file} ({drop.archived_rows} rows): "
                 f"`farloom archive restore {drop.archive_file}` puts them back"
                 if drop.archive_file else "; no archive was kept")
        raise MinutesDropped(
            f"cannot {action} {_span(first, last)}: the raw clicks of "
            f"[{iso(drop.range.start)}, {iso(drop.range.end)}) were dropped by raw "
            f"retention at {iso(int(drop.dropped_at or 0))}{where}"
            + (f" ({len(raw)} dropped partitions in the range)" if len(raw) > 1 else ""))
    minutes = partition_drops.dropped_between(cursor, MINUTE_COUNTS, first, last)
    if minutes:
        drop = minutes[0]
        raise MinutesDropped(
            f"cannot {action} {_span(first, last)}: the per-minute results of "
            f"[{iso(drop.range.start)}, {iso(drop.range.end)}) were dropped by minute "
            f"retention at {iso(int(drop.dropped_at or 0))}; their hour and day rollups "
            "are kept and cannot be recomputed minute by minute")


def _span(first: int, last: int) -> str:
    return iso(first) if first == last else f"{iso(first)}..{iso(last)}"
