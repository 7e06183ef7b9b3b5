"""health.assess is pure: the verdict depends only on the snapshot, the time and history."""

from __future__ import annotations

from farloom_tasks.core.health import assess
from farloom_tasks.pipeline.status import Snapshot
from farloom_tasks.stores import topology

NOW = 1_800_000_030.0  # 30 s into a minute
LAST_DUE = 1_800_000_000 - 60  # its predecessor


def snapshot(**changes: object) -> Snapshot:
    base = Snapshot(checked_at=NOW, closed_minute=LAST_DUE,
                    queues={topology.DEAD_QUEUE: 4, topology.AGGREGATES_DEAD_QUEUE: 1},
                    celery_workers=None)
    for name, value in changes.items():
        setattr(base, name, value)
    return base


def test_a_recent_close_with_steady_dead_letters_is_healthy() -> None:
    verdict = assess(snapshot(), now=NOW, max_lag_seconds=120, previous_dead_letters=5)

    assert verdict.healthy and verdict.problems == []
    assert verdict.lag_seconds == 30.0


def test_lag_past_the_threshold_is_a_problem_but_lag_at_it_is_not() -> None:
    at_limit = assess(snapshot(), now=NOW + 90, max_lag_seconds=120, previous_dead_letters=None)
    past = assess(snapshot(), now=NOW + 91, max_lag_seconds=120, previous_dead_letters=None)

    assert at_limit.healthy
    assert not past.healthy and "121 s ago" in past.problems[0]


def test_dead_letters_growing_across_both_dead_queues_is_a_problem() -> None:
    verdict = assess(snapshot(), now=NOW, max_lag_seconds=120, previous_dead_letters=4)

    assert verdict.problems == ["dead letters are growing: 4 -> 5"]


def test_nothing_closed_yet_and_no_answering_celery_worker_are_problems() -> None:
    verdict = assess(snapshot(closed_minute=None, celery_workers=[]), now=NOW,
                     max_lag_seconds=120, previous_dead_letters=None)

    assert verdict.problems == ["no minute has been closed yet",
                                "no Celery worker answered the ping"]


def test_an_unreachable_service_is_named_first() -> None:
    verdict = assess(snapshot(unreachable={"rabbitmq": "connection refused"}, queues={}),
                     now=NOW, max_lag_seconds=120, previous_dead_letters=3)

    assert verdict.problems == ["rabbitmq is unreachable: connection refused"]


def test_a_redis_loss_being_repaired_is_a_problem_and_a_repaired_one_is_not() -> None:
    repairing = assess(snapshot(redis_losses=1, redis_losses_unrepaired=1), now=NOW,
                       max_lag_seconds=120, previous_dead_letters=None)
    repaired = assess(snapshot(redis_losses=1, redis_losses_unrepaired=0), now=NOW,
                      max_lag_seconds=120, previous_dead_letters=None)

    assert len(repairing.problems) == 1 and "Redis lost its data" in repairing.problems[0]
    assert repaired.healthy
