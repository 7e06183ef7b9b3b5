"""Chaos 3: RabbitMQ stopped (``rabbitmqctl stop_app``) and started again mid-stream.

The broker is a node of the test's own (rabbitmq_node.py), so the tests running
beside it keep the machine's node. ``start_app`` runs in a ``finally``, followed
by a bounded wait until the broker answers again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pika.exceptions
import pytest

from tests.chaos.pipeline import ClickFeed, Pipeline, assert_exact, record_outcome
from tests.support.database import raw_rows
from tests.support.rabbitmq_node import RabbitNode, private_node
from tests.support.stack import Stack
from tests.support.waiting import wait_for

OUTAGE_SECONDS = 4.0
BROKER_BACK_SECONDS = 120.0
# The feed is open-ended (a cap only so a hang cannot publish forever) and is stopped
# once ingest has resumed: on a loaded machine a fixed-length feed could be drained
# before the broker answered again, leaving nothing to show the resumption with.
FEED_CAP_CLICKS = 900_000


def _broker_answers(stack: Stack) -> bool:
    try:
        stack.amqp().close()
    except (pika.exceptions.AMQPError, OSError):
        return False
    return True


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    with private_node(tmp_path_factory.mktemp("broker")) as node:
        yield node


def test_a_rabbitmq_restart_mid_stream_loses_no_confirmed_click(
        stack: Stack, broker: RabbitNode, tmp_path: Path) -> None:
    stack = stack.with_settings(amqp_url=broker.amqp_url)
    feed = ClickFeed(seed=3, clicks_per_message=20)
    with Pipeline(stack, tmp_path, ingest_workers=1) as pipeline:
        run = feed.start_publishing(stack, clicks=FEED_CAP_CLICKS, rate=3_000)
        try:
            wait_for("the ingest worker to store", lambda: raw_rows(stack) > 10_000, 60,
                     context=pipeline.tails)
            try:
                broker.ctl("stop_app")
                stopped = time.monotonic()
                time.sleep(OUTAGE_SECONDS)
            finally:
                broker.ctl("start_app")
                wait_for("RabbitMQ to answer again", lambda: _broker_answers(stack),
                         BROKER_BACK_SECONDS, poll=0.5)
            started = time.monotonic()
            # Counted only now: the worker keeps storing what it had prefetched while
            # the broker is down (those acks fail; redelivered, they are duplicates).
            stored_before = raw_rows(stack)
            # Both sides reconnect by themselves: stored clicks move on again.
            wait_for("the ingest worker to store again after the restart",
                     lambda: raw_rows(stack) > stored_before + 1_000, 120, poll=0.1,
                     context=pipeline.tails)
            resumed = time.monotonic()
            assert not run.done(), "the stream ended during the outage: raise its cap"
        finally:
            run.stop()
        stats = run.wait(timeout=300)
        wait_for("every valid click to be stored",
                 lambda: raw_rows(stack) == feed.valid_clicks, 180, poll=0.2,
                 context=pipeline.tails)
        outcome = assert_exact(stack, feed, timeout=180, on_timeout=pipeline.tails)
        pipeline.assert_all_alive()
        ingest_log = pipeline.ingest[0].log_path.read_text(errors="replace")

    assert stats.reconnects >= 1, "the feed's publisher never saw the broker go"
    assert "reconnecting" in ingest_log
    record_outcome(
        "3-rabbitmq-restarted", injected=f"rabbitmqctl stop_app, {OUTAGE_SECONDS:.0f} s, "
        "start_app while the feed published (3,000 clicks/s offered) and 1 ingest worker "
        "consumed", clicks_sent=feed.elements, valid_clicks=outcome.valid_clicks,
        lost_clicks=outcome.lost_clicks, double_counted_clicks=outcome.double_counted_clicks,
        minutes=outcome.minutes, publisher_reconnects=stats.reconnects,
        publisher_republished_messages=stats.republished,
        dead_letter_repeats=outcome.dead_letter_repeats,
        broker_down_seconds=round(started - stopped, 1),
        ingest_resumed_after_start_app_seconds=round(resumed - started, 1),
        settle_seconds=outcome.settle_seconds)
