"""Minute windows: UTC tumbling windows on event time. Pure; time is passed in.

Minutes are carried as integer epoch seconds (a multiple of 60) everywhere
inside Farloom: they hash, sort and serialise without ambiguity. Conversions to
``datetime`` happen only at the edges (SQL, RFC 3339 in messages).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

MINUTE = 60


def minute_of(epoch_seconds: float) -> int:
    """The start of the minute holding ``epoch_seconds`` (floor, also for negatives)."""
    return int(epoch_seconds // MINUTE) * MINUTE


def deadline_of(minute: int, grace_seconds: float) -> float:
    """When minute ``minute`` may be closed: its end plus the grace period."""
    return minute + MINUTE + grace_seconds


def last_due_minute(now: float, grace_seconds: float) -> int:
    """The newest minute whose deadline has passed at ``now``."""
    return minute_of(now - grace_seconds) - MINUTE


def due_minutes(closed_through: int | None, now: float, grace_seconds: float,
                first_minute: int | None = None) -> list[int]:
    """Minutes to close, oldest first: after ``closed_through`` up to the last due one.

    ``first_minute`` bounds the catch-up when nothing was closed yet (a fresh
    install should not try to close every minute since 1970).
    """
    last = last_due_minute(now, grace_seconds)
    if closed_through is None:
        start = last if first_minute is None else first_minute
    else:
        start = closed_through + MINUTE
    return list(minute_range(start, last))


def minute_range(start: int, end: int) -> Iterator[int]:
    """Every minute from ``start`` to ``end`` inclusive (both minute-aligned)."""
    return iter(range(minute_of(start), minute_of(end) + 1, MINUTE))


def to_datetime(minute: int) -> datetime:
    return datetime.fromtimestamp(minute, UTC)


def from_datetime(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return minute_of(moment.timestamp())


def iso(minute: int) -> str:
    """RFC 3339 text of a minute, e.g. ``2026-11-29T14:03:00Z``."""
    return to_datetime(minute).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_minute(text: str) -> int:
    """Parse a user-typed minute: RFC 3339, or ``YYYY-MM-DD HH:MM`` read as UTC.

    A time inside a minute means that minute. Raises ValueError with a message a
    person can act on.
    """
    return minute_of(parse_instant(text))


def parse_instant(text: str) -> float:
    """Parse RFC 3339 or ``YYYY-MM-DD HH:MM[:SS]`` (UTC when no offset) to epoch seconds."""
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time; use RFC 3339 (2026-11-29T14:03:00Z) "
            "or 'YYYY-MM-DD HH:MM' (UTC)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
