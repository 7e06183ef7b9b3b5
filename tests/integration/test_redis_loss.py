"""Redis loses its data between two ticks: the next tick sees it, raw rebuilds the minutes."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from farloom_tasks.core.windows import MINUTE, last_due_minute, minute_of
from farloom_tasks.stores import redis_counts
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
from tests.support.stack import Stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("celery_worker")


def _tick() -> list[dict[str, int | None]]:
    from farloom_tasks import tasks

    result: list[dict[str, int | None]] = tasks.close_due_minutes.delay().get(timeout=60)
    return result


def _redis_minute(stack: Stack, minute: int) -> Counter[tuple[int, str]]:
    client = stack.redis()
    found: Counter[tuple[int, str]] = Counter()
    for shard in range(stack.settings.shard_count):
        members: Any = client.zrange(redis_counts.clicks_key(shard, minute), 0, -1,
                                     withscores=True)
        for ad, n in members:
            found[(minute, bytes(ad).decode())] += int(n)
    return found


def test_a_flushed_redis_is_detected_and_every_affected_minute_is_exact_again(
        stack: Stack, tmp_path: Path) -> None:
    closed = last_due_minute(time.time(), 5.0) - MINUTE
    open_minute = minute_of(time.time()) + 2 * MINUTE  # valid: within the clock skew
    set_watermark(stack, closed - MINUTE)
    writer, _ = durable_writer(stack)
    before = clicks_for(closed, "b", {"a": 6, "b": 4, "c": 1})
    early = clicks_for(open_minute, "o", {"a": 3, "d": 2})
    writer.write(before + early)
    state = wait_published(stack, [closed], tick=_tick)
    write_aggregates(stack)
    assert_agg_is(stack, counted(before), [closed])
    assert sql(stack, "SELECT count(*) FROM agg.redis_losses")[0][0] == 0  # first run: no loss

    stack.redis().flushdb()
    # Written after the loss: they land on empty keys, so Redis alone would be partial.
    late = clicks_for(closed, "l", {"b": 2, "e": 1})
    more = clicks_for(open_minute, "m", {"d": 1})
    writer.write(late + more)

    assert _tick() == []  # the detecting tick claims nothing
    losses = wait_for("the loss to be repaired", lambda: sql(
        stack, "SELECT minutes_rebuilt, minutes_reaggregated FROM agg.redis_losses "
        "WHERE repaired_at IS NOT NULL"))
    assert [tuple(r) for r in losses] == [(2, 1)]  # both minutes rebuilt; the closed one again
    assert _redis_minute(stack, open_minute) == counted(early + more)
    shown = stack.farloom("status", "--json", "--no-celery", "--state",
                          str(tmp_path / "status.json"))
    assert json.loads(shown.stdout)["redis_losses"] == 1, shown.stderr

    wait_published(stack, [closed], after=state[closed][2] or 0, tick=_tick)
    write_aggregates(stack)
    assert_agg_is(stack, counted(before + late), [closed])
    assert closes(stack, [closed])[closed][0] >= 2
    assert sql(stack, "SELECT count(*) FROM agg.redis_losses")[0][0] == 1  # recorded once
