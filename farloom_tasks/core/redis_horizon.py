"""When Redis can be trusted with a minute, and how to tell which shards lost their data. Pure.

Redis keeps a minute's sets for ``retention`` seconds after their last write,
so a minute is read from Redis only while none of its keys can have expired
(``redis_is_complete``). Each shard also keeps a data epoch, written once per
lifetime of the shard's keys, next to them (in the shard's hash tag, so on a
Redis Cluster on the same master). A different epoch than PostgreSQL
remembers means that shard lost its data (``judge``, ``judge_shards``): on a
cluster one master can lose its shards while the others keep theirs, and a
flushed single Redis is every shard lost at once. ``affected_window`` is the
minutes to rebuild from raw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
    """Compare the epoch PostgreSQL remembers with the one Redis has now (one shard)."""
    if known_epoch is None:
        return Verdict.FIRST_RUN
    return Verdict.SAME if known_epoch == current_epoch else Verdict.LOST


@dataclass(frozen=True, slots=True)
class ShardVerdicts:
    """What each shard's epoch says, shards in ascending order."""

    first_run: tuple[int, ...] = ()  # no epoch known yet: remember theirs, nothing lost
    lost: tuple[int, ...] = ()  # a new epoch: these shards lost their data

    @property
    def changed(self) -> bool:
        return bool(self.first_run or self.lost)


def judge_shards(known: Mapping[int, str], current: Mapping[int, str]) -> ShardVerdicts:
    """``judge`` for every shard Redis has an epoch for now (``current``).

    A shard PostgreSQL remembers but ``current`` lacks (a smaller shard count
    now) is no longer read, so it is not judged.
    """
    verdicts = {shard: judge(known.get(shard), epoch) for shard, epoch in current.items()}
    return ShardVerdicts(
        first_run=tuple(sorted(s for s, v in verdicts.items() if v is Verdict.FIRST_RUN)),
        lost=tuple(sorted(s for s, v in verdicts.items() if v is Verdict.LOST)))


def every_shard_lost(lost: tuple[int, ...], shard_count: int) -> bool:
    """Whether a loss took every shard: all of Redis went (a flushed or restarted
    single Redis, every master of a cluster), and with it whatever else that
    Redis held, such as Celery's chord counters when it is also the result backend."""
    return set(range(shard_count)) <= set(lost)


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
