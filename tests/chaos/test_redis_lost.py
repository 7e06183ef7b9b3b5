"""Scenario 4: Redis loses its data mid-stream (FLUSHDB of the stack's Redis db).

The whole pipeline runs: ingest, Celery worker and beat, aggregated writer.
Once minutes are being closed, the stack's Redis db is flushed: the per-minute
sets of open and recently closed minutes, in-flight snapshots, outbox markers
and Celery's chord counters (the result backend) all vanish at once. The next
close tick must see the new epoch (redis_loss.py), rebuild every affected
minute from raw and re-aggregate the closed ones, so that agg ends exactly
equal to the feed's own counts, without any reconciliation run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.chaos.pipeline import ClickFeed, Pipeline, assert_exact, record_outcome
from tests.support.database import sql
from tests.support.stack import Stack
from tests.support.waiting import wait_for


def _one(stack: Stack, statement: str) -> Any:
    """The first row of ``statement``, None if it has none."""
    rows = sql(stack, statement)
    return rows[0] if rows else None


def test_a_flushed_redis_mid_stream_is_detected_rebuilt_from_raw_and_agg_stays_exact(
        stack: Stack, tmp_path: Path) -> None:
    feed = ClickFeed(seed=4, clicks_per_message=20)
    # Reconciliation must not be what repairs it: it would not run within the test.
    with Pipeline(stack, tmp_path, ingest_workers=1,
                  env={"FARLOOM_RECONCILE_INTERVAL_SECONDS": "3600"}) as pipeline:
        run = feed.start_publishing(stack, clicks=45_000, rate=1_500)
        try:
            wait_for("a minute to be published and clicks to be flowing", lambda: _one(
                stack, "SELECT (SELECT count(*) FROM raw.ad_clicks) > 5000 AND EXISTS ("
                "SELECT 1 FROM agg.minute_closes WHERE published_revision IS NOT NULL)")[0],
                120, poll=0.2, context=pipeline.tails)
            assert _one(stack, "SELECT count(*) FROM agg.redis_losses")[0] == 0
            raw_at_flush = _one(stack, "SELECT count(*) FROM raw.ad_clicks")[0]
            flushed = time.monotonic()
            stack.redis().flushdb()
            wait_for("the loss to be detected", lambda: _one(
                stack, "SELECT count(*) FROM agg.redis_losses")[0], 60, context=pipeline.tails)
            detected = time.monotonic()
            repaired = wait_for("the loss to be repaired", lambda: _one(
                stack, "SELECT minutes_rebuilt, minutes_reaggregated FROM agg.redis_losses "
                "WHERE repaired_at IS NOT NULL"), 120, poll=0.1, context=pipeline.tails)
            repaired_at = time.monotonic()
            assert not run.done(), "the feed ended before the flush: not mid-stream"
        except BaseException:
            run.stop()
            raise
        run.wait(timeout=120)
        outcome = assert_exact(stack, feed, timeout=180, on_timeout=pipeline.tails)
        pipeline.assert_all_alive()
        worker_log = pipeline.celery_worker.log_path.read_text(errors="replace")

    assert _one(stack, "SELECT count(*) FROM agg.redis_losses")[0] == 1  # recorded once
    minutes_rebuilt, minutes_reaggregated = repaired
    assert minutes_rebuilt >= 1 and minutes_reaggregated >= 1, repaired
    assert "REDIS LOST ITS DATA" in worker_log  # loud, for whoever is on call
    record_outcome(
        "4-redis-lost",
        injected="FLUSHDB of the stack's Redis db mid-stream (counts, snapshots, outbox "
                 "markers and Celery chord state gone), full pipeline running",
        valid_clicks=outcome.valid_clicks, raw_rows_at_flush=raw_at_flush,
        lost_clicks=outcome.lost_clicks, double_counted_clicks=outcome.double_counted_clicks,
        minutes=outcome.minutes, minutes_rebuilt=minutes_rebuilt,
        minutes_reaggregated=minutes_reaggregated,
        seconds_to_detect=round(detected - flushed, 2),
        seconds_to_repair=round(repaired_at - flushed, 2),
        seconds_to_settle_after_feed=outcome.settle_seconds)
