"""Scenario 5: PostgreSQL unreachable for 20 s from the ingest worker and the aggregated writer.

Both reach PostgreSQL through a TCP proxy the test runs (tcp_proxy.py); the
Celery worker and beat keep their direct connection, so minutes keep closing
and the clicks held up during the outage arrive late. The proxy resets every
connection and refuses new ones for 20 s, then listens again. While it is cut,
the ingest worker must acknowledge nothing (the queue's unacknowledged and
total counts only grow, raw does not), and afterwards everything is exact.
"""

from __future__ import annotations

import time
from pathlib import Path

from tests.chaos.pipeline import ClickFeed, Pipeline, assert_exact, record_outcome
from tests.chaos.tcp_proxy import TcpProxy
from tests.support.broker import queue_counts
from tests.support.database import raw_rows
from tests.support.stack import Stack
from tests.support.waiting import seconds_until, wait_for

OUTAGE_SECONDS = 20.0


def test_postgresql_unreachable_for_20_s_acks_nothing_unwritten_and_loses_nothing(
        stack: Stack, tmp_path: Path) -> None:
    # Only valid clicks (duplicates and late ones included): every message is acked
    # only after a durable write, so "nothing acked" is "the queue never shrinks".
    feed = ClickFeed(seed=5, clicks_per_message=20, invalid_share=0.0, not_json_share=0.0)
    with TcpProxy() as proxy:
        pipeline = Pipeline(stack, tmp_path, ingest_workers=1)
        proxied = {"FARLOOM_DATABASE_URL": proxy.url(stack.settings.database_url)}
        for process in [*pipeline.ingest, pipeline.writer]:
            process.env = {**process.env, **proxied}
        with pipeline:
            ingest = pipeline.ingest[0]
            pid = ingest.pid
            run = feed.start_publishing(stack, clicks=24_000, rate=1_200)
            wait_for("the worker to store through the proxy", lambda: raw_rows(stack) > 2_000, 120)

            proxy.cut()
            cut_at = time.monotonic()
            time.sleep(1.0)  # a commit already on its way settles one way or the other
            raw_at_cut = raw_rows(stack)
            samples: list[tuple[int, int, int]] = []  # (messages in queue, unacked, raw rows)
            while time.monotonic() - cut_at < OUTAGE_SECONDS:
                ready, held = queue_counts(stack)
                samples.append((ready + held, held, raw_rows(stack)))
                time.sleep(1.0)
            proxy.restore()
            resumed_seconds = seconds_until("the worker to store again",
                                            lambda: raw_rows(stack) > raw_at_cut, 120)

            run.wait(timeout=180)
            outcome = assert_exact(stack, feed, timeout=180, on_timeout=pipeline.tails)
            pipeline.assert_all_alive()
            assert ingest.pid == pid and ingest.starts == 1  # backed off, never restarted
            assert "retrying" in ingest.tail(200_000)

    assert len(samples) >= 5, samples
    assert {raw for _, _, raw in samples} == {raw_at_cut}, f"raw grew while cut off: {samples}"
    queued = [q for q, _, _ in samples]
    unacked = [u for _, u, _ in samples]
    assert queued == sorted(queued), f"messages were acked while PostgreSQL was away: {samples}"
    assert unacked == sorted(unacked) and unacked[0] > 0, (
        f"the worker should hold its deliveries unacked: {samples}")
    record_outcome(
        "5-postgresql-outage",
        injected=f"TCP proxy in front of PostgreSQL for the ingest worker and the aggregated "
                 f"writer: connections reset, new ones refused for {OUTAGE_SECONDS:.0f} s",
        clicks_valid=outcome.valid_clicks, lost_clicks=outcome.lost_clicks,
        double_counted_clicks=outcome.double_counted_clicks,
        raw_rows_added_during_outage=samples[-1][2] - raw_at_cut,
        max_unacked_during_outage=max(unacked), messages_acked_during_outage=0,
        seconds_to_resume_storing=round(resumed_seconds, 1),
        seconds_to_settle_after_feed=outcome.settle_seconds,
        ingest_worker_restarts=ingest.starts - 1, minutes=outcome.minutes)
