"""Replaying minutes through the real worker and the `farloom replay` command."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from farloom_tasks.core.windows import MINUTE, iso, last_due_minute, parse_minute, to_datetime
from tests.support.database import sql
from tests.support.minute_checks import (
    assert_agg_is,
    clicks_for,
    counted,
    durable_writer,
    set_watermark,
    wait_published,
    write_aggregates,
)
from tests.support.redis_cluster import on_single_redis_and_cluster
from tests.support.stack import Stack

pytestmark = pytest.mark.usefixtures("celery_worker")

ADS = {"a": 6, "b": 4, "c": 4, "ü": 4, **{f"z{i}": 1 for i in range(12)}}


def _tick() -> None:
    from farloom_tasks import tasks

    tasks.close_due_minutes.delay().get(timeout=60)


@pytest.fixture
def closed_minutes(stack: Stack) -> Iterator[tuple[list[int], list]]:  # type: ignore[type-arg]
    """Two closed, written minutes and the clicks in them."""
    newest = last_due_minute(time.time(), 5.0) - MINUTE
    minutes = [newest - MINUTE, newest]
    set_watermark(stack, minutes[0] - MINUTE)
    writer, _ = durable_writer(stack)
    clicks = clicks_for(minutes[0], "r0", ADS) + clicks_for(minutes[1], "r1", ADS)
    writer.write(clicks)
    wait_published(stack, minutes, tick=_tick)
    write_aggregates(stack)
    assert_agg_is(stack, counted(clicks), minutes)
    yield minutes, clicks


def _revision(stack: Stack, minute: int) -> int:
    rows = sql(stack, "SELECT revision FROM agg.minute_totals WHERE minute = :m",
               m=to_datetime(minute))
    return int(rows[0][0])


@on_single_redis_and_cluster
@pytest.mark.usefixtures("aggregate_writer")
def test_replay_from_raw_after_redis_is_flushed_gives_exact_results(
        stack: Stack, closed_minutes: tuple[list[int], list]) -> None:  # type: ignore[type-arg]
    minutes, clicks = closed_minutes
    before = {m: _revision(stack, m) for m in minutes}
    stack.redis().flushdb()

    done = stack.farloom("replay", iso(minutes[0]), iso(minutes[1]), "--wait",
                         "--timeout", "90")

    assert done.returncode == 0, done.stderr[-2000:]
    assert_agg_is(stack, counted(clicks), minutes)
    assert all(_revision(stack, m) > before[m] for m in minutes)


@on_single_redis_and_cluster
@pytest.mark.usefixtures("aggregate_writer")
def test_replay_from_raw_after_raw_rows_are_deleted_removes_those_clicks(
        stack: Stack, closed_minutes: tuple[list[int], list]) -> None:  # type: ignore[type-arg]
    minutes, clicks = closed_minutes
    gone = {c.click_id for c in clicks if c.ad_id in ("a", "z3")
            and c.clicked_at < minutes[1]}
    sql(stack, "DELETE FROM raw.ad_clicks WHERE click_id = ANY(:ids)", ids=list(gone))

    done = stack.farloom("replay", time.strftime("%Y-%m-%d %H:%M", time.gmtime(minutes[0])),
                         "--source", "raw", "--wait", "--timeout", "90")

    assert done.returncode == 0, done.stderr[-2000:]
    assert_agg_is(stack, counted(c for c in clicks if c.click_id not in gone), minutes)


def test_replay_of_a_minute_that_is_not_due_yet_is_refused_with_a_reason(
        stack: Stack) -> None:
    set_watermark(stack, last_due_minute(time.time(), 5.0) - 10 * MINUTE)
    # Two minutes past the last due one: still open for a minute at least, however
    # slowly the command starts.
    open_minute = last_due_minute(time.time(), 5.0) + 2 * MINUTE

    done = stack.farloom("replay", iso(open_minute), "--wait", "--timeout", "60")

    assert done.returncode == 2
    assert f"minute {iso(open_minute)} is not due yet: it closes at" in done.stderr
    assert "nothing was queued" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.usefixtures("aggregate_writer")
def test_replay_on_a_fresh_install_closes_minutes_long_past_their_deadline_itself(
        stack: Stack) -> None:
    """No tick ever ran (no watermark): replay closes due minutes by beat's rule."""
    set_watermark(stack, None)
    first = parse_minute("2017-11-06 16:00")
    minutes = [first, first + MINUTE, first + 2 * MINUTE]
    clicks = [click for i, minute in enumerate(minutes)
              for click in clicks_for(minute, f"old{i}", ADS)]
    writer, _ = durable_writer(stack)
    writer.write(clicks)

    done = stack.farloom("replay", "2017-11-06 16:00", "2017-11-06 16:02", "--source", "raw",
                         "--wait", "--timeout", "120")

    assert done.returncode == 0, done.stderr[-2000:]
    assert_agg_is(stack, counted(clicks), minutes)
    watermark = sql(stack, "SELECT extract(epoch FROM closed_through)::bigint "
                    "FROM agg.watermark WHERE id = 1")[0][0]
    # Closed through the last due minute as the command saw it (the clock moved on since).
    assert last_due_minute(time.time(), 5.0) - MINUTE <= watermark <= last_due_minute(
        time.time(), 5.0)


@on_single_redis_and_cluster
def test_replay_tasks_started_with_delay_republish_the_same_numbers(
        stack: Stack, closed_minutes: tuple[list[int], list]) -> None:  # type: ignore[type-arg]
    from farloom_tasks import tasks

    minutes, clicks = closed_minutes
    result = tasks.replay_minute.delay(minutes[1], "auto").get(timeout=60)
    assert result["source"] == "redis"
    wait_published(stack, [minutes[1]], after=result["revision"] - 1)
    write_aggregates(stack)

    assert _revision(stack, minutes[1]) == result["revision"]
    assert_agg_is(stack, counted(clicks), minutes)

    before = {m: _revision(stack, m) for m in minutes}
    assert tasks.replay_range.delay(minutes[0], minutes[1], "raw").get(timeout=60) == 2
    wait_published(stack, minutes, after=max(before.values()))
    write_aggregates(stack)
    assert all(_revision(stack, m) > before[m] for m in minutes)
    assert_agg_is(stack, counted(clicks), minutes)
