"""Chaos 6: two ``celery beat`` processes (own schedule files) tick at once for 3 minutes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.chaos.exactness import closes_summary
from tests.chaos.pipeline import ClickFeed, Pipeline, assert_exact, record_outcome
from tests.support.stack import Stack
from tests.support.waiting import wait_for

DURATION_SECONDS = 180.0
RATE = 1_000  # clicks/s: steady traffic into every minute of the window
TICK_LINE = "Sending due task close-due-minutes"


@pytest.mark.timeout(480)
def test_two_beats_ticking_together_for_three_minutes_double_count_nothing(
        stack: Stack, tmp_path: Path) -> None:
    # Clicks at most 5 s old: a minute is re-aggregated for the feed's 2% late clicks,
    # not for a steady trickle of lagging ones, so its attempts show what the beats did.
    feed = ClickFeed(seed=6, clicks_per_message=20, spread_seconds=5.0, min_age_seconds=0.0)
    with Pipeline(stack, tmp_path, ingest_workers=1) as pipeline:
        second = pipeline.add_beat()
        run = feed.start_publishing(stack, clicks=int(RATE * DURATION_SECONDS), rate=RATE)
        try:
            began = time.monotonic()
            wait_for("the feed to finish its three minutes", run.done, DURATION_SECONDS + 120,
                     poll=1.0, context=pipeline.tails)
            assert time.monotonic() - began >= DURATION_SECONDS * 0.95
            stats = run.wait(timeout=60)
        finally:
            run.stop()
        outcome = assert_exact(stack, feed, timeout=180, on_timeout=pipeline.tails)
        pipeline.assert_all_alive()
        ticks = [beat.log_path.read_text(errors="replace").count(TICK_LINE)
                 for beat in pipeline.beats]

    assert len(ticks) == 2 and second in pipeline.beats
    # Both really ticked throughout (every 0.25 s): far more than a tick a second each.
    assert min(ticks) >= DURATION_SECONDS, f"close ticks sent per beat: {ticks}"
    summary = closes_summary(stack, feed.minutes())
    assert summary["unpublished"] == 0, summary
    record_outcome(
        "6-two-beats", injected=f"two celery beat processes for {DURATION_SECONDS:.0f} s "
        f"while {RATE:,} clicks/s flowed", clicks_sent=feed.elements,
        valid_clicks=outcome.valid_clicks, lost_clicks=outcome.lost_clicks,
        double_counted_clicks=outcome.double_counted_clicks, minutes=outcome.minutes,
        close_ticks_per_beat=ticks, publish_seconds=round(stats.seconds, 1),
        minute_close_attempts=summary["attempts"], settle_seconds=outcome.settle_seconds)
