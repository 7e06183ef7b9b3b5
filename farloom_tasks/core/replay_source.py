"""Which source a replay reads a minute from: Redis as it is, or rebuilt from raw. Pure."""

from __future__ import annotations

from farloom_tasks.errors import FarloomError

SOURCES = ("auto", "redis", "raw")


class ReplayRefused(FarloomError):
    """The minute cannot be replayed (not closed yet, or an unknown source)."""


def choose_source(source: str, *, present_in_redis: bool, redis_complete: bool) -> str:
    """``redis`` or ``raw`` for a requested source.

    ``auto`` reads Redis only when the minute's keys are there and none can have
    expired yet (``redis_horizon.redis_is_complete``); otherwise it rebuilds from raw.
    """
    if source not in SOURCES:
        raise ReplayRefused(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    if source == "auto":
        return "redis" if present_in_redis and redis_complete else "raw"
    return source
