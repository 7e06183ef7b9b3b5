"""Chaos 3b: quorum queues on a three-node RabbitMQ cluster; one node stopped and started, twice.

The cluster is the test's own (tests/support/rabbitmq_cluster.py): nodes A, B and
C. The publisher (the feed's ConfirmingPublisher) knows only A. Both ingest
workers are connected to B, each with its own address order for failover (B,C,A
and B,A,C); Celery, beat and the aggregated writer use A,B,C. Every queue is a
quorum queue (FARLOOM_QUEUE_TYPE=quorum) whose leader starts on C: the
topology is first declared through C.

1. C is stopped while the stream runs — no client is connected to it, but it
   leads every queue, so each queue elects a new leader — and started again.
2. B, the node both workers are connected to, is stopped: the workers fail over
   to C and A by themselves. Then B is started again.

Nothing confirmed is lost and nothing is double-counted: raw rows, Redis counts
and agg equal the feed's own truth. Every wait is on a condition.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.chaos.pipeline import ClickFeed, Pipeline, assert_exact, record_outcome
from tests.support.database import raw_rows, sql
from tests.support.rabbitmq_cluster import RabbitCluster, private_cluster
from tests.support.redis_view import redis_minute_counts
from tests.support.stack import Stack
from tests.support.waiting import seconds_until, wait_for

A, B, C = 0, 1, 2
FEED_CAP_CLICKS = 900_000  # open-ended feed, stopped once the last phase has shown progress
RATE = 2_000  # clicks/s offered
# A click taken for publishing this many valid clicks after a node stopped, found in
# raw while the node is still down: published, routed, delivered and stored without it
# (not a delivery the workers had prefetched before it went).
LATER_CLICKS = 500
CONSUMING = "consuming farloom.clicks.ingest"


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    with private_cluster(tmp_path_factory.mktemp("cluster")) as made:
        yield made


def _leaders(cluster: RabbitCluster) -> set[str]:
    """The nodes leading the cluster's quorum queues."""
    listed = cluster.nodes[A].ctl("list_queues", "--no-table-headers", "name", "leader")
    return {line.split("\t")[1] for line in listed.splitlines() if "\t" in line}


def test_stopping_a_quorum_leader_and_then_a_workers_node_loses_and_doubles_no_click(
        stack: Stack, cluster: RabbitCluster, tmp_path: Path) -> None:
    quorum = stack.with_settings(queue_type="quorum", amqp_url=cluster.urls(A, B, C))
    # Declared through C first: C leads every queue (RabbitMQ places a new quorum
    # queue's leader on the node the declaring client is connected to).
    quorum.with_settings(amqp_url=cluster.urls(C)).reset()
    assert _leaders(cluster) == {cluster.nodes[C].name}
    feed = ClickFeed(seed=9, clicks_per_message=20)
    pipeline = Pipeline(quorum, tmp_path, ingest_workers=2)
    for worker, order in zip(pipeline.ingest, [(B, C, A), (B, A, C)], strict=True):
        worker.env = {**worker.env, "FARLOOM_AMQP_URL": cluster.urls(*order)}

    def stored_later_click() -> Callable[[], bool]:
        click_id = f"{feed.prefix}-{feed.valid_clicks + LATER_CLICKS}"
        return lambda: bool(sql(quorum, "SELECT 1 FROM raw.ad_clicks WHERE click_id = :id",
                                id=click_id))

    def consuming(worker: int) -> int:
        return pipeline.ingest[worker].log_path.read_text(errors="replace").count(CONSUMING)

    figures: dict[str, float] = {}
    with pipeline:
        run = feed.start_publishing(quorum, clicks=FEED_CAP_CLICKS, rate=RATE,
                                    amqp_url=cluster.urls(A))
        try:
            wait_for("the ingest workers to store", lambda: raw_rows(quorum) > 5_000, 90,
                     context=pipeline.tails)
            # Phase 1: the leader of every queue goes.
            stopped = time.monotonic()
            cluster.stop_node(C)
            figures["phase1_later_click_stored_seconds"] = seconds_until(
                "a click published after C stopped to be stored", stored_later_click(), 90,
                context=pipeline.tails)
            new_leaders = _leaders(cluster)
            cluster.start_node(C)
            figures["phase1_node_down_seconds"] = time.monotonic() - stopped
            assert cluster.nodes[C].name not in new_leaders
            # Phase 2: the node both workers are connected to goes.
            stopped = time.monotonic()
            cluster.stop_node(B)
            later = stored_later_click()
            figures["phase2_failed_over_seconds"] = seconds_until(
                "both workers to consume through another node",
                lambda: consuming(0) >= 2 and consuming(1) >= 2, 90, context=pipeline.tails)
            figures["phase2_later_click_stored_seconds"] = figures[
                "phase2_failed_over_seconds"] + seconds_until(
                "a click published after B stopped to be stored", later, 90,
                context=pipeline.tails)
            cluster.start_node(B)
            figures["phase2_node_down_seconds"] = time.monotonic() - stopped
            wait_for("a click published after B is back to be stored", stored_later_click(),
                     90, context=pipeline.tails)
            assert not run.done(), "the stream ended before the last phase: raise its cap"
        finally:
            run.stop()
        stats = run.wait(timeout=300)
        outcome = assert_exact(quorum, feed, timeout=180, on_timeout=pipeline.tails)
        assert redis_minute_counts(quorum) == feed.expected
        pipeline.assert_all_alive()
        reconnects = [consuming(worker) - 1 for worker in (0, 1)]

    assert stats.messages == feed.messages  # every message taken was confirmed
    record_outcome(
        "3b-rabbitmq-cluster-node-stopped",
        injected="3-node cluster, quorum queues led by C; publisher on A, both ingest workers "
        "on B; C shut down and started mid-stream, then B",
        clicks_sent=feed.elements, messages_sent=feed.messages, messages_confirmed=stats.messages,
        valid_clicks=outcome.valid_clicks, lost_clicks=outcome.lost_clicks,
        double_counted_clicks=outcome.double_counted_clicks, minutes=outcome.minutes,
        publisher_reconnects=stats.reconnects, publisher_republished_messages=stats.republished,
        ingest_reconnects=reconnects, dead_letter_repeats=outcome.dead_letter_repeats,
        settle_seconds=outcome.settle_seconds,
        **{name: round(value, 1) for name, value in figures.items()})
