"""The pure half of Redis loss detection: the epoch verdict and the affected window."""

from __future__ import annotations

from farloom_tasks.core.redis_horizon import (
    Verdict,
    affected_window,
    judge,
    redis_is_complete,
)
from farloom_tasks.core.windows import MINUTE, minute_of


def test_no_known_epoch_is_a_first_run_not_a_loss() -> None:
    assert judge(None, "1764428000.0") is Verdict.FIRST_RUN


def test_the_same_epoch_means_redis_kept_its_data() -> None:
    assert judge("1764428000.0", "1764428000.0") is Verdict.SAME


def test_a_different_epoch_means_redis_lost_its_data() -> None:
    assert judge("1764428000.0", "1764428999.5") is Verdict.LOST


def test_the_window_covers_every_minute_the_closer_would_still_read_from_redis() -> None:
    now, retention, skew = 1_764_428_000.0, 7200, 300.0
    first, last = affected_window(now, retention, skew)
    trusted = [m for m in range(minute_of(now) - 3 * retention, last + 10 * MINUTE, MINUTE)
               if redis_is_complete(m, now, skew, retention)]
    assert trusted and first <= min(trusted)
    # ... and every minute a valid click can be dated in (at most skew in the future).
    assert last == minute_of(now + skew)
    assert first % MINUTE == 0 and last % MINUTE == 0


def test_a_minute_older_than_the_window_is_never_read_from_redis_again() -> None:
    now, retention, skew = 1_764_428_000.0, 7200, 300.0
    first, _ = affected_window(now, retention, skew)
    for later in (now, now + 1, now + 3600):
        assert not redis_is_complete(first - MINUTE, later, skew, retention)
