"""Chaos 8: 5,000 clicks/s offered for 5 minutes to 2 ingest workers and the full pipeline.

Exact results, and worker memory that stays flat: each process's RSS (with its
children) once warm, 30 s into the load, and at the end of the load. The bound
is generous (50 MB); the figures themselves go to var/reliability.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.chaos.pipeline import ClickFeed, Pipeline, assert_exact, record_outcome
from tests.support.database import raw_rows
from tests.support.stack import Stack
from tests.support.waiting import wait_for

RATE = 5_000  # clicks/s offered
DURATION_SECONDS = 300.0
WARM_SECONDS = 30.0  # RSS baseline: buffers, pools and caches have filled by then
RSS_GROWTH_BOUND = 50 * 1024 * 1024
MB = 1024 * 1024


@pytest.mark.timeout(1200)
def test_five_thousand_clicks_a_second_for_five_minutes_are_exact_with_flat_memory(
        stack: Stack, tmp_path: Path) -> None:
    # Clicks at most 5 s old, as from ad servers that publish at once; 1% late ones.
    feed = ClickFeed(seed=8, clicks_per_message=100, ads=1000, spread_seconds=5.0,
                     min_age_seconds=0.0, late_share=0.01)
    with Pipeline(stack, tmp_path, ingest_workers=2) as pipeline:
        watched = [*pipeline.ingest, pipeline.celery_worker, pipeline.writer]
        launch_rss = {p.name: p.rss_bytes() for p in watched}
        run = feed.start_publishing(stack, clicks=int(RATE * DURATION_SECONDS), rate=RATE)
        try:
            began = time.monotonic()
            time.sleep(WARM_SECONDS)
            warm_rss = {p.name: p.rss_bytes() for p in watched}
            stored_warm, warm_at = raw_rows(stack), time.monotonic()
            wait_for("the feed to finish", run.done, DURATION_SECONDS + 300, poll=1.0,
                     context=pipeline.tails)
            ended = time.monotonic()
            stats = run.wait(timeout=60)
            stored_end = raw_rows(stack)
            end_rss = {p.name: p.rss_bytes() for p in watched}
        finally:
            run.stop()
        wait_for("every valid click to be stored", lambda: raw_rows(stack) == feed.valid_clicks,
                 600, poll=0.5, context=pipeline.tails)
        caught_up = time.monotonic()
        outcome = assert_exact(stack, feed, timeout=300, on_timeout=pipeline.tails)
        pipeline.assert_all_alive()

    figures = {name: {"launch_mb": round(launch_rss[name] / MB, 1),
                      "warm_mb": round(warm_rss[name] / MB, 1),
                      "end_mb": round(end_rss[name] / MB, 1)} for name in launch_rss}
    offered = feed.elements / (ended - began)
    record_outcome(
        "8-sustained-load", injected=f"{RATE:,} clicks/s offered for {DURATION_SECONDS:.0f} s "
        "(100 clicks per message), 2 ingest workers, Celery worker (2 processes), beat, writer, "
        "all on this 2-core machine", clicks_sent=feed.elements,
        valid_clicks=outcome.valid_clicks, lost_clicks=outcome.lost_clicks,
        double_counted_clicks=outcome.double_counted_clicks, minutes=outcome.minutes,
        published_clicks_per_second=round(offered),
        stored_clicks_per_second_after_warmup=round(
            (stored_end - stored_warm) / (ended - warm_at)),
        behind_at_end_clicks=feed.valid_clicks - stored_end,
        caught_up_after_load_seconds=round(caught_up - ended, 1),
        publish_seconds=round(stats.seconds, 1), rss=figures,
        settle_seconds=outcome.settle_seconds)
    grown = {name: f"{figures[name]['warm_mb']} -> {figures[name]['end_mb']} MB"
             for name in figures if end_rss[name] > warm_rss[name] + RSS_GROWTH_BOUND}
    assert not grown, f"memory grew by more than 50 MB under steady load: {grown}"
