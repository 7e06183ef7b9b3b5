"""Time partitions of raw clicks and per-minute counts: which exist, which to make,
which retention drops, and which clicks are too old to accept (pure).

Times are epoch seconds (UTC). A partition covers [start, end) of event time
(``minute``); its start is a multiple of its length since the epoch, so hour and
day partitions begin on the hour and at midnight UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

HOUR = 3600
DAY = 86_400


@dataclass(frozen=True)
class PartitionRange:
    start: int
    end: int

    def holds(self, moment: float) -> bool:
        return self.start <= moment < self.end


def start_of(moment: float, length_seconds: int) -> int:
    """The start of the partition of ``length_seconds`` that holds ``moment``."""
    return int(moment // length_seconds) * length_seconds


def starts_between(first: float, last: float, length_seconds: int) -> list[int]:
    """The starts of every partition of [first, last], oldest first."""
    start, final = start_of(first, length_seconds), start_of(last, length_seconds)
    return list(range(start, final + 1, length_seconds))


def wanted_ahead(now: float, length_seconds: int, max_clock_skew_seconds: float,
                 margin_seconds: float) -> list[int]:
    """The partitions the periodic task keeps ready: the current one through
    ``now`` + the allowed clock skew + a margin (so that a missed run or two never
    leaves ingest making one while a click waits)."""
    return starts_between(now, now + max_clock_skew_seconds + margin_seconds, length_seconds)


def expired(ranges: Iterable[PartitionRange], now: float,
            retention_days: float) -> list[PartitionRange]:
    """The partitions that ended more than ``retention_days`` ago, oldest first.
    Retention 0 keeps everything."""
    if retention_days <= 0:
        return []
    horizon = now - retention_days * DAY
    return sorted((r for r in ranges if r.end <= horizon), key=lambda r: r.start)


def acceptance_floor(now: float, retention_days: float, length_seconds: int) -> float:
    """The oldest event time ingest still accepts under raw retention.

    A click is refused (``beyond_retention``) once its partition would be dropped
    within one partition length: so no click is ever written into a partition that
    retention is about to drop, even by an ingest batch that waits in a retry loop
    for a while. Retention 0 keeps everything: the floor is minus infinity.
    """
    if retention_days <= 0:
        return float("-inf")
    # The partition holding the floor ends at least one length after the horizon.
    return float(start_of(now - retention_days * DAY, length_seconds) + length_seconds)
