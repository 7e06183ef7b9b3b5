"""Closing minutes with the real Celery worker: exactness, late clicks, duplicates, retries."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from farloom_tasks import failpoints
from farloom_tasks.core.attempts import Attempt
from farloom_tasks.core.windows import MINUTE, last_due_minute, to_datetime
from farloom_tasks.stores import close_ledger
from tests.support.broker import close_vhost_connections
from tests.support.database import sql
from tests.support.minute_checks import (
    assert_agg_is,
    clicks_for,
    closes,
    counted,
    durable_writer,
    set_watermark,
    wait_published,
    write_aggregates,
)
from tests.support.redis_cluster import on_single_redis_and_cluster
from tests.support.stack import Stack

pytestmark = pytest.mark.usefixtures("celery_worker")

# Ties straddle the top-5 boundary, and "Z" < "a" < "é" in code-point order.
FIRST = {"a": 9, "b": 7, "c": 7, "é": 7, "Z": 7, "d": 7, "e": 3, **{f"x{i}": 1 for i in range(20)}}
SECOND = {"b": 4, "c": 5, **{f"y{i}": 2 for i in range(9)}}


def _tick(tolerate_failure: bool = False) -> None:
    from farloom_tasks import tasks

    tasks.close_due_minutes.delay().get(timeout=60, propagate=not tolerate_failure)


def _past_minutes(count: int) -> list[int]:
    """``count`` consecutive minutes that are all due, the newest one a minute back."""
    newest = last_due_minute(time.time(), 5.0) - MINUTE
    return [newest - MINUTE * i for i in reversed(range(count))]


@on_single_redis_and_cluster
def test_every_minute_is_exact_through_duplicates_outbox_leftovers_and_late_clicks(
        stack: Stack) -> None:
    m0, m1 = _past_minutes(2)
    set_watermark(stack, m0 - MINUTE)
    writer, raw = durable_writer(stack)
    first, second = clicks_for(m0, "p0", FIRST), clicks_for(m1, "p1", SECOND)
    writer.write(first[:40])
    writer.write(first)  # a redelivered batch: the first 40 are duplicates
    raw.commit_batch(second)  # committed, then the worker died before Redis: outbox only

    wait_published(stack, [m0, m1], tick=_tick)
    write_aggregates(stack)
    assert_agg_is(stack, counted(first + second), [m0, m1])

    # Late clicks for both closed minutes, some of them redelivered duplicates.
    before = closes(stack, [m0, m1])
    late = clicks_for(m0, "late0", {"e": 6, "new": 1}) + clicks_for(m1, "late1", {"y0": 3})
    writer.write(late + first[:5])
    assert sql(stack, "SELECT count(*) FROM agg.late_minutes")[0][0] == 2

    after = wait_published(stack, [m0, m1], after=max(p or 0 for _, _, p in before.values()),
                           tick=_tick)
    write_aggregates(stack)
    assert_agg_is(stack, counted(first + second + late), [m0, m1])
    assert all(after[m][0] == 2 for m in (m0, m1))  # the close, then one re-aggregation


def test_a_duplicate_close_of_the_same_minute_changes_nothing(
        stack: Stack) -> None:
    from farloom_tasks import tasks

    (m0,) = _past_minutes(1)
    set_watermark(stack, m0 - MINUTE)
    writer, _ = durable_writer(stack)
    clicks = clicks_for(m0, "d", FIRST)
    writer.write(clicks)
    state = wait_published(stack, [m0], tick=_tick)
    write_aggregates(stack)
    assert_agg_is(stack, counted(clicks), [m0])

    # Two beats ticking at once, the same chord started twice, and a second close.
    results = [tasks.close_due_minutes.delay() for _ in range(3)]
    for result in results:
        result.get(timeout=60)
    engine = stack.engine()
    try:
        from farloom_tasks.stores.transactions import transaction

        with transaction(engine) as cursor:
            again = close_ledger.claim_revision(cursor, m0)
    finally:
        engine.dispose()
    tasks.start_aggregation(Attempt(m0, again))
    tasks.start_aggregation(Attempt(m0, again))
    wait_published(stack, [m0], after=state[m0][2] or 0)
    write_aggregates(stack)

    assert_agg_is(stack, counted(clicks), [m0])
    revision = sql(stack, "SELECT revision FROM agg.minute_totals WHERE minute = :m",
                   m=to_datetime(m0))[0][0]
    assert revision == again


@on_single_redis_and_cluster
def test_a_shard_task_that_fails_once_is_retried_and_the_minute_completes(
        stack: Stack) -> None:
    (m0,) = _past_minutes(1)
    set_watermark(stack, m0 - MINUTE)
    writer, _ = durable_writer(stack)
    clicks = clicks_for(m0, "f", SECOND)
    writer.write(clicks)
    counter = failpoints.COUNTER_KEY.format(name="topk_shard")
    stack.redis().set(counter, 1)  # exactly the next shard call fails

    state = wait_published(stack, [m0], tick=_tick)
    write_aggregates(stack)

    assert_agg_is(stack, counted(clicks), [m0])
    assert state[m0][0] == 1  # retried inside the same attempt, not re-closed
    assert int(stack.redis().get(counter) or -1) == 0  # the failure did happen


def test_a_shard_task_that_keeps_failing_fails_its_chord_and_the_next_tick_retries(
        stack: Stack) -> None:
    (m0,) = _past_minutes(1)
    set_watermark(stack, m0 - MINUTE)
    writer, _ = durable_writer(stack)
    clicks = clicks_for(m0, "g", SECOND)
    writer.write(clicks)
    # Shard 0 fails its first call and all three retries: the chord fails.
    stack.redis().set(failpoints.INSTANCE_KEY.format(name="topk_shard", instance=f"{m0}.0"), 4)

    state = wait_published(stack, [m0], tick=_tick)
    write_aggregates(stack)

    assert_agg_is(stack, counted(clicks), [m0])
    attempts, started, published = state[m0]
    assert attempts == 2 and started == published


def test_a_tick_that_fails_after_claiming_hands_its_minutes_back_for_a_soon_retry(
        stack: Stack) -> None:
    (m0,) = _past_minutes(1)
    set_watermark(stack, m0 - MINUTE)
    writer, _ = durable_writer(stack)
    clicks = clicks_for(m0, "t", SECOND)
    writer.write(clicks)
    stack.redis().set(failpoints.INSTANCE_KEY.format(name="close_due_minutes",
                                                     instance="claimed"), 1)

    state = wait_published(stack, [m0], tick=lambda: _tick(tolerate_failure=True))
    write_aggregates(stack)

    assert_agg_is(stack, counted(clicks), [m0])
    assert state[m0][0] == 2  # the abandoned claim, then the retry


def test_a_fresh_install_aggregates_clicks_that_arrived_before_its_first_close(
        stack: Stack) -> None:
    set_watermark(stack, None)
    old, recent = _past_minutes(9)[0], _past_minutes(1)[0]
    writer, _ = durable_writer(stack)
    clicks = clicks_for(old, "o", {"a": 2, "b": 1}) + clicks_for(recent, "r", {"a": 1})
    writer.write(clicks)  # ingest ran before beat's first tick

    wait_published(stack, [old, recent], tick=_tick)
    write_aggregates(stack)

    assert_agg_is(stack, counted(clicks), [old, recent])
    closed = sql(stack, "SELECT count(*) FROM agg.minute_closes")[0][0]
    assert closed <= 4  # the two minutes with clicks and the last due ones, not since 1970


def test_a_late_minute_is_still_published_after_the_broker_dropped_every_connection(
        stack: Stack) -> None:
    (m0,) = _past_minutes(1)
    set_watermark(stack, m0 - MINUTE)
    writer, _ = durable_writer(stack)
    clicks = clicks_for(m0, "c0", SECOND)
    writer.write(clicks)
    state = wait_published(stack, [m0], tick=_tick)
    write_aggregates(stack)

    assert close_vhost_connections(stack) >= 2  # the worker's consumer and its publisher
    late = clicks_for(m0, "c1", {"b": 2, "late": 1})
    writer.write(late)
    wait_published(stack, [m0], after=state[m0][2] or 0, tick=_tick)
    write_aggregates(stack)

    assert_agg_is(stack, counted(clicks + late), [m0])


@pytest.mark.parametrize("missed", [4])
def test_minutes_missed_while_beat_was_down_are_each_closed_once_oldest_first(
        stack: Stack, tmp_path: Path, missed: int) -> None:
    from tests.support.celery_worker import running_beat

    minutes = _past_minutes(missed)
    set_watermark(stack, minutes[0] - MINUTE)  # beat last closed this, then went away
    writer, _ = durable_writer(stack)
    clicks = [c for i, m in enumerate(minutes) for c in clicks_for(m, f"m{i}", {"a": i + 1})]
    writer.write(clicks)

    with running_beat(stack, tmp_path):
        state = wait_published(stack, minutes)
        time.sleep(3 * stack.settings.close_tick_seconds)  # a few more ticks must change nothing
        state = closes(stack, minutes)
    write_aggregates(stack)

    assert_agg_is(stack, counted(clicks), minutes)
    assert all(attempts == 1 and started == published
               for attempts, started, published in state.values())
    revisions = [state[m][1] for m in minutes]
    assert revisions == sorted(revisions)  # started oldest first
    watermark = sql(stack, "SELECT extract(epoch FROM closed_through)::bigint "
                    "FROM agg.watermark")[0][0]
    assert watermark >= minutes[-1]
    assert Counter(m for (m, _), n in counted(clicks).items() for _ in range(n)) == Counter(
        {m: i + 1 for i, m in enumerate(minutes)})
