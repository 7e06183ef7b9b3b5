"""Chaos 1: an ingest worker SIGKILLed five times at random moments of a 200,000-click stream."""

from __future__ import annotations

import random
import time
from pathlib import Path

from tests.chaos.pipeline import ClickFeed, Pipeline, assert_exact, record_outcome
from tests.support.database import raw_rows
from tests.support.stack import Stack
from tests.support.waiting import wait_for

CLICKS = 200_000
KILLS = 5
RATE = 6_000  # clicks/s offered: the stream lasts ~33 s, long enough for five kills in it


def test_ingest_workers_killed_five_times_mid_stream_lose_and_double_count_nothing(
        stack: Stack, tmp_path: Path) -> None:
    rng = random.Random(20261129)
    feed = ClickFeed(seed=1, clicks_per_message=50)
    with Pipeline(stack, tmp_path, ingest_workers=2) as pipeline:
        run = feed.start_publishing(stack, clicks=CLICKS, rate=RATE)
        try:
            for _ in range(KILLS):
                # Kill while the workers are storing: after the stored count moved on.
                target = raw_rows(stack) + 2_000
                wait_for("the ingest workers to store more clicks",
                         lambda: raw_rows(stack) > target, 60,  # noqa: B023 (called at once)
                         context=pipeline.tails)
                time.sleep(rng.uniform(0.0, 1.5))
                victim = rng.choice(pipeline.ingest)
                assert not run.done(), "the stream ended before every kill: raise CLICKS"
                victim.kill()
                victim.start()
            last_restart = time.monotonic()
            stats = run.wait(timeout=300)
        finally:
            run.stop()
        published = time.monotonic()
        wait_for("every valid click to be stored",
                 lambda: raw_rows(stack) == feed.valid_clicks, 180, poll=0.2,
                 context=pipeline.tails)
        stored = time.monotonic()
        outcome = assert_exact(stack, feed, timeout=180, on_timeout=pipeline.tails)
        pipeline.assert_all_alive()
        kills = sum(worker.kills for worker in pipeline.ingest)

    assert kills == KILLS
    record_outcome(
        "1-ingest-worker-killed", injected=f"SIGKILL of an ingest worker {KILLS} times "
        "mid-stream (2 workers, each restarted at once)", clicks_sent=feed.elements,
        valid_clicks=outcome.valid_clicks, lost_clicks=outcome.lost_clicks,
        double_counted_clicks=outcome.double_counted_clicks, minutes=outcome.minutes,
        dead_letters=outcome.dead_letters, dead_letter_repeats=outcome.dead_letter_repeats,
        publish_seconds=round(stats.seconds, 1),
        stored_after_last_restart_seconds=round(stored - last_restart, 1),
        stored_after_stream_end_seconds=round(stored - published, 1),
        settle_seconds=outcome.settle_seconds)
