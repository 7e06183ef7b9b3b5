"""The pure half of Redis loss detection: the epoch verdicts, per shard, and the affected window."""

from __future__ import annotations

from farloom_tasks.core.redis_horizon import (
    ShardVerdicts,
    Verdict,
    affected_window,
    every_shard_lost,
    judge,
    judge_shards,
    redis_is_complete,
)
from farloom_tasks.core.windows import MINUTE, minute_of


def test_no_known_epoch_is_a_first_run_not_a_loss() -> None:
    assert judge(None, "1764428000.0") is Verdict.FIRST_RUN


def test_the_same_epoch_means_redis_kept_its_data() -> None:
    assert judge("1764428000.0", "1764428000.0") is Verdict.SAME


def test_a_different_epoch_means_redis_lost_its_data() -> None:
    assert judge("1764428000.0", "1764428999.5") is Verdict.LOST


KNOWN = {shard: f"1764428000.{shard}" for shard in range(8)}


def test_shards_that_kept_their_epochs_are_neither_lost_nor_first_runs() -> None:
    assert judge_shards(KNOWN, dict(KNOWN)) == ShardVerdicts()
    assert not judge_shards(KNOWN, dict(KNOWN)).changed


def test_only_the_shards_whose_epoch_changed_are_lost() -> None:
    # One master of a cluster lost shards 2 and 5; the others kept their data.
    current = {**KNOWN, 2: "1764429000.5", 5: "1764429000.5"}
    verdicts = judge_shards(KNOWN, current)
    assert verdicts == ShardVerdicts(first_run=(), lost=(2, 5))
    assert verdicts.changed


def test_a_flushed_single_redis_is_every_shard_lost() -> None:
    current = dict.fromkeys(KNOWN, "1764429000.5")
    verdicts = judge_shards(KNOWN, current)
    assert verdicts.lost == tuple(range(8))
    assert every_shard_lost(verdicts.lost, 8)


def test_a_loss_of_some_shards_is_not_a_loss_of_every_shard() -> None:
    assert not every_shard_lost((2, 5), 8)
    assert not every_shard_lost((), 8)
    assert every_shard_lost((0, 1, 2), 3)


def test_shards_with_no_epoch_known_are_first_runs_not_losses() -> None:
    # The first tick of all (nothing known), or shards added by a larger shard count.
    assert judge_shards({}, dict(KNOWN)) == ShardVerdicts(first_run=tuple(range(8)))
    grown = {**KNOWN, 8: "1764429000.5", 9: "1764429000.5"}
    assert judge_shards(KNOWN, grown) == ShardVerdicts(first_run=(8, 9))


def test_first_runs_and_losses_are_told_apart_in_one_judgement() -> None:
    known = {0: "a", 1: "b"}
    assert judge_shards(known, {0: "a", 1: "c", 2: "d"}) == ShardVerdicts(
        first_run=(2,), lost=(1,))


def test_a_shard_no_longer_read_is_not_judged() -> None:
    # A smaller shard count: PostgreSQL still remembers shards 2 and 3.
    assert judge_shards({0: "a", 1: "b", 2: "c", 3: "d"}, {0: "a", 1: "b"}) == ShardVerdicts()


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
