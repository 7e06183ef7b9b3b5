"""The ingest worker under faults: SIGKILL at every crash point and at random moments,
two workers at once, SIGTERM mid-stream, and connections cut by RabbitMQ, PostgreSQL
and Redis. After each, raw rows and Redis counts equal the test's own truth."""

from __future__ import annotations

import random
import signal
import time
import urllib.request
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.integration.ingest_support import (
    WAIT_SECONDS,
    assert_exact,
    assert_rejections_exact,
    mixed_stream,
    one_click_stream,
    read_log,
    run_burst,
    run_bursts_side_by_side,
    worker,
)
from tests.support.broker import close_vhost_connections, publish, queue_counts
from tests.support.database import raw_rows
from tests.support.ports import free_port
from tests.support.redis_cluster import on_single_redis_and_cluster
from tests.support.stack import Stack
from tests.support.waiting import wait_for

# Small batches and prefetch make many flushes out of a small stream, so that the
# faults below land mid-stream without publishing much.
SLOW = {"batch_size": 10, "prefetch_count": 40}


@on_single_redis_and_cluster
@pytest.mark.parametrize("point", ["before_commit", "after_commit", "after_redis", "after_ack"])
def test_a_worker_killed_at_a_crash_point_and_restarted_leaves_exact_results(
        stack: Stack, point: str) -> None:
    stream = mixed_stream(3, 600, time.time(), duplicate_share=0.3, invalid_share=0.1)
    publish(stack, stream.bodies)

    with worker(stack, "--burst", failpoints=f"{point}:3", **SLOW) as crashing:
        crashing.wait(timeout=WAIT_SECONDS)
    assert crashing.returncode == -signal.SIGKILL  # it really died at the third pass
    assert raw_rows(stack) < len(stream.click_ids)

    run_burst(stack)

    assert_exact(stack, stream)
    assert queue_counts(stack) == (0, 0)
    assert_rejections_exact(stack, stream)


def test_a_worker_killed_at_random_moments_and_restarted_leaves_exact_results(
        stack: Stack) -> None:
    rng = random.Random(20261129)
    stream = mixed_stream(5, 3000, time.time(), duplicate_share=0.2, invalid_share=0.05)
    publish(stack, stream.bodies)

    for _ in range(3):
        before = raw_rows(stack)
        with worker(stack, **SLOW):
            wait_for("the worker to store", lambda before=before: raw_rows(stack) > before)
            time.sleep(rng.uniform(0.0, 0.3))
        # worker() SIGKILLs it on the way out.
    run_burst(stack)

    assert_exact(stack, stream)
    assert_rejections_exact(stack, stream)


def test_two_workers_side_by_side_give_exact_results(stack: Stack) -> None:
    stream = mixed_stream(9, 3000, time.time(), duplicate_share=0.3, invalid_share=0.05)
    bodies = stream.bodies * 2  # every message twice: both workers meet the same click ids
    random.Random(9).shuffle(bodies)
    publish(stack, bodies)

    assert run_bursts_side_by_side(stack, 2, batch_size=200) == [0, 0]

    assert_exact(stack, stream)
    assert queue_counts(stack) == (0, 0)


def test_sigterm_mid_stream_flushes_and_acks_before_exiting(stack: Stack,
                                                            tmp_path: Path) -> None:
    stream = one_click_stream(3000, time.time())
    publish(stack, stream.bodies)
    stats = tmp_path / "stats.json"

    with worker(stack, "--stats-file", str(stats), **SLOW) as process:
        wait_for("the worker to store", lambda: raw_rows(stack) > 0)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT_SECONDS) == 0

    # Every message is either stored (and acked: it is not back in the queue) or
    # back in the queue (and not stored): nothing was stored without its ack.
    ready, unacked = queue_counts(stack)
    assert unacked == 0
    assert raw_rows(stack) + ready == len(stream.bodies)
    assert stats.exists() and '"clicks_stored"' in stats.read_text()

    run_burst(stack)
    assert_exact(stack, stream)


def test_a_broker_side_connection_close_is_survived_with_exact_results(
        stack: Stack, tmp_path: Path) -> None:
    stream = one_click_stream(3000, time.time())
    publish(stack, stream.bodies)
    log_path = tmp_path / "worker.log"

    port = free_port()

    with log_path.open("w") as log, worker(stack, log=log, metrics_port=port,
                                           **SLOW) as process:
        wait_for("the worker to store", lambda: raw_rows(stack) > 0)
        assert close_vhost_connections(stack) >= 1
        wait_for("the worker to reconnect and finish",
                 lambda: queue_counts(stack) == (0, 0) and raw_rows(stack) == 3000)
        scraped = _scrape(port)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT_SECONDS) == 0

    assert "reconnecting" in read_log(log_path)
    assert_exact(stack, stream)
    # Redelivered clicks are duplicates, never stored twice, in the metrics too.
    assert scraped["farloom_ingest_clicks_stored_total"] == 3000
    assert scraped['farloom_ingest_transient_errors_total{service="rabbitmq"}'] >= 1


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def _cut_store_connections(stack: Stack) -> int:
    """Terminate the worker's PostgreSQL sessions and Redis clients (this test's only)."""
    engine = stack.engine()
    try:
        with engine.begin() as conn:
            cut = len(conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()")).all())
    finally:
        engine.dispose()
    client = stack.redis()
    me = client.client_id()
    for info in client.client_list():
        if int(info["db"]) == stack.redis_db and int(info["id"]) != me:
            client.client_kill_filter(_id=info["id"])
            cut += 1
    return cut


def test_lost_postgresql_and_redis_connections_are_retried_with_exact_results(
        stack: Stack, tmp_path: Path) -> None:
    stream = mixed_stream(13, 3000, time.time(), duplicate_share=0.2)
    publish(stack, stream.bodies)
    log_path = tmp_path / "worker.log"

    with log_path.open("w") as log, worker(stack, log=log, **SLOW) as process:
        for _ in range(3):
            before = raw_rows(stack)
            wait_for("the worker to store", lambda before=before: raw_rows(stack) > before)
            assert _cut_store_connections(stack) >= 1
        wait_for("the worker to finish", lambda: queue_counts(stack) == (0, 0))
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=WAIT_SECONDS) == 0

    assert "retrying" in read_log(log_path)
    assert_exact(stack, stream)
