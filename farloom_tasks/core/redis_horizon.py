"""When Redis can be trusted with a minute, and how to tell that it lost its data. Pure.

Redis keeps a minute's sets for ``retention`` seconds after their last write,
so a minute is read from Redis only while none of its keys can have expired
(``redis_is_complete``). Redis also keeps a data epoch written once per
lifetime; a different epoch than PostgreSQL remembers means Redis lost its
data (``judge``), and ``affected_window`` is the minutes to rebuild from raw.
"""

from __future__ import annotations

from enum import Enum

from farloom_tasks.core.windows import minute_of


def redis_is_complete(minute: int, now: float, max_clock_skew_seconds: float,
                      retention_seconds: float, margin_seconds: float = 120.0) -> bool:
    """Whether none of ``minute``'s Redis keys can have expired yet.

    Every write to a minute's keys happens at or after ``minute - skew`` (a
    click may be dated at most ``skew`` into the future) and pushes their
    expiry to at least write time + retention. Past that horizon some shard
    may have lost its keys while another still has them, and reading Redis
    would silently publish a partial minute, so such minutes go back to raw.
    """
    return now < minute - max_clock_skew_seconds + retention_seconds - margin_seconds


class Verdict(Enum):
    FIRST_RUN = "first_run"  # no epoch known yet: remember this one
    SAME = "same"  # Redis still holds what it held
    LOST = "lost"  # a new epoch: Redis lost its data since the last tick


def judge(known_epoch: str | None, current_epoch: str) -> Verdict:
    """Compare the epoch PostgreSQL remembers with the one Redis has now."""
    if known_epoch is None:
        return Verdict.FIRST_RUN
    return Verdict.SAME if known_epoch == current_epoch else Verdict.LOST


def affected_window(now: float, retention_seconds: float,
                    max_clock_skew_seconds: float) -> tuple[int, int]:
    """First and last minute whose Redis keys may be read as complete again.

    Older minutes are aggregated and replayed from raw anyway
    (``redis_is_complete`` is false for them, and only gets falser as time
    passes); newer ones than ``now + skew`` cannot have clicks yet.
    """
    first = minute_of(now - retention_seconds + max_clock_skew_seconds)
    last = minute_of(now + max_clock_skew_seconds)
    return min(first, last), last
