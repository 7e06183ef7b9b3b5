"""Chaos 2: the Celery worker SIGKILLed (prefork pool and all) while a minute's chord runs."""

from __future__ import annotations

import time
from pathlib import Path

from farloom_tasks import failpoints
from tests.chaos.click_feed import minute_of
from tests.chaos.exactness import minute_state
from tests.chaos.pipeline import ClickFeed, Pipeline, assert_exact, record_outcome
from tests.support.stack import Stack
from tests.support.waiting import wait_for

# Shard 0 of the target minute fails this many times (the task retries itself up
# to three times), so its chord is certainly unfinished when the worker is killed.
SHARD_FAILURES = 3


def test_a_celery_worker_killed_mid_chord_still_closes_the_minute_exactly_once(
        stack: Stack, tmp_path: Path) -> None:
    # Clicks dated at most 2 s back and only until just before the target minute
    # ends: the target is the last minute with clicks, not buried under late
    # re-aggregations, and the pipeline settles as soon as it is written.
    feed = ClickFeed(seed=2, clicks_per_message=20, spread_seconds=2.0, min_age_seconds=0.0)
    target = minute_of(time.time())
    if time.time() - target > 45:
        target += 60  # too little of this minute is left to stream into it
    key = failpoints.INSTANCE_KEY.format(name="topk_shard", instance=f"{target}.0")
    client = stack.redis()
    client.set(key, SHARD_FAILURES)

    with Pipeline(stack, tmp_path, ingest_workers=1) as pipeline:
        run = feed.start_publishing(stack, clicks=150_000, rate=1_000)
        try:
            wait_for("the target minute's last seconds", lambda: time.time() >= target + 58,
                     120, poll=0.1)
            run.stop()
            stats = run.wait(timeout=120)
            wait_for("shard 0 of the target minute to fail",
                     lambda: int(client.get(key) or 0) < SHARD_FAILURES, 90, poll=0.01,
                     context=pipeline.tails)
            pipeline.celery_worker.kill()
            killed = time.monotonic()
            at_kill = minute_state(stack, target)
            assert at_kill["started_revision"] is not None, at_kill
            assert at_kill["published_revision"] is None, f"the chord had finished: {at_kill}"
            pipeline.celery_worker.start()

            def written() -> bool:
                state = minute_state(stack, target)
                return (state["published_revision"] is not None
                        and state["written_revision"] == state["published_revision"])

            wait_for("the target minute to be published and written", written, 120, poll=0.1,
                     context=pipeline.tails)
            recovered = time.monotonic()
        finally:
            run.stop()
        outcome = assert_exact(stack, feed, timeout=180, on_timeout=pipeline.tails)
        pipeline.assert_all_alive()

    assert max(feed.minutes()) == target
    final = minute_state(stack, target)
    assert int(client.get(key) or 0) == 0  # every injected failure did happen
    record_outcome(
        "2-celery-worker-killed", injected="SIGKILL of the Celery worker's process group "
        f"while shard 0 of a minute's chord was failing ({SHARD_FAILURES} injected failures, "
        "retry pending); worker restarted at once", clicks_sent=feed.elements,
        valid_clicks=outcome.valid_clicks, lost_clicks=outcome.lost_clicks,
        double_counted_clicks=outcome.double_counted_clicks, minutes=outcome.minutes,
        publish_seconds=round(stats.seconds, 1),
        target_minute_attempts=final["attempts"],
        target_minute_revision_at_kill=at_kill["started_revision"],
        target_minute_published_revision=final["published_revision"],
        minute_written_after_kill_seconds=round(recovered - killed, 1),
        settle_seconds=outcome.settle_seconds)
