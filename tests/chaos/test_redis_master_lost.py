"""Scenario 4b: one master of a three-master Redis Cluster loses its data mid-stream.

The whole pipeline runs with its counts on the test session's private Redis
Cluster (tests/support/redis_cluster.py) and Celery's results in a plain Redis
db (FARLOOM_CELERY_RESULT_URL): two ingest workers, a Celery worker and beat,
the aggregated writer. Once minutes are being closed, one master is flushed
(FLUSHALL on that node alone): the sets, totals, applied markers, snapshots
and epochs of the shards it holds vanish, while the other masters keep theirs
and ingest keeps adding increments on every master. The next close tick must
see that exactly those shards lost their data (redis_loss.py), rebuild only
their minutes from raw, and re-aggregate the closed ones, so that agg ends
exactly equal to the feed's own counts without any reconciliation run.

"Only those shards are rebuilt" is read off the masters themselves: MONITOR
runs on every master from before the flush until the repair is recorded, and
a rebuild's swap is the only RENAME Farloom sends (nothing else renames, and
no minute of this feed is old enough for the closer or a replay to rebuild).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from farloom_tasks import processes
from farloom_tasks.stores import redis_counts
from tests.chaos.pipeline import ClickFeed, Pipeline, assert_exact, record_outcome
from tests.support.database import sql
from tests.support.redis_cluster import ClusterNode, RedisClusterUnderTest
from tests.support.stack import Stack, isolated_stack
from tests.support.waiting import wait_for

# A rebuild's swap: RENAME farloom:{shard-N}:rebuild:<minute>:<token>:<kind> <live key>
REBUILD_RENAME = re.compile(
    rf'"RENAME" "{redis_counts.KEY_PREFIX}:\{{shard-(\d+)\}}:rebuild:(\d+):')


@pytest.fixture(scope="module")
def cluster_stack(redis_cluster: RedisClusterUnderTest) -> Iterator[Stack]:
    """A chaos stack of its own whose counts live on the session's Redis Cluster."""
    with isolated_stack(redis_cluster=redis_cluster) as stack:
        yield stack


@pytest.fixture
def stack(cluster_stack: Stack) -> Stack:
    cluster_stack.reset()
    return cluster_stack


def _one(stack: Stack, statement: str, **params: Any) -> Any:
    """The first row of ``statement``, None if it has none."""
    rows = sql(stack, statement, **params)
    return rows[0] if rows else None


class Monitors:
    """``redis-cli MONITOR`` on each master, to a file each, until ``stop``."""

    def __init__(self, nodes: list[ClusterNode], log_dir: Path) -> None:
        self.paths = {node.port: log_dir / f"monitor-{node.port}.log" for node in nodes}
        self._running: list[subprocess.Popen[bytes]] = []
        for node in nodes:
            with open(self.paths[node.port], "wb") as out:
                self._running.append(subprocess.Popen(
                    ["redis-cli", "-h", "127.0.0.1", "-p", str(node.port), "monitor"],
                    stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
        wait_for("MONITOR to be attached on every master", lambda: all(
            path.stat().st_size > 0 for path in self.paths.values()), 30)

    def stop(self) -> None:
        for monitor in self._running:
            processes.stop(monitor, grace=5, group=True)
        self._running.clear()

    def rebuilt_shards(self, node: ClusterNode) -> set[int]:
        """The shards whose minutes a rebuild swapped in on ``node``."""
        text = self.paths[node.port].read_text(errors="replace")
        return {int(match[0]) for match in REBUILD_RENAME.findall(text)}


def test_a_flushed_cluster_master_mid_stream_is_detected_for_its_shards_only_and_agg_is_exact(
        stack: Stack, redis_cluster: RedisClusterUnderTest, tmp_path: Path) -> None:
    shards = stack.settings.shard_count
    masters = redis_cluster.masters()
    assert len(masters) == 3
    flushed = redis_cluster.master_for_shard(0)
    lost = redis_cluster.shards_on(flushed, shards)
    kept = [shard for shard in range(shards) if shard not in lost]
    assert lost and kept, (lost, kept)  # 8 shards on 3 masters: every master holds some
    feed = ClickFeed(seed=41, clicks_per_message=20)
    # Reconciliation must not be what repairs it: it would not run within the test.
    with Pipeline(stack, tmp_path, ingest_workers=2,
                  env={"FARLOOM_RECONCILE_INTERVAL_SECONDS": "3600"}) as pipeline:
        run = feed.start_publishing(stack, clicks=45_000, rate=1_500)
        monitors: Monitors | None = None
        try:
            wait_for("a minute to be published, clicks flowing and every epoch known", lambda: _one(
                stack, "SELECT (SELECT count(*) FROM raw.ad_clicks) > 5000 AND EXISTS ("
                "SELECT 1 FROM agg.minute_closes WHERE published_revision IS NOT NULL) AND "
                "(SELECT count(*) FROM agg.redis_epochs) = :n", n=shards)[0],
                120, poll=0.2, context=pipeline.tails)
            assert _one(stack, "SELECT count(*) FROM agg.redis_losses")[0] == 0
            epochs_before = dict(sql(stack, "SELECT shard, epoch FROM agg.redis_epochs"))
            monitors = Monitors(masters, tmp_path)
            raw_at_flush = _one(stack, "SELECT count(*) FROM raw.ad_clicks")[0]
            flushed_at = time.monotonic()
            redis_cluster.flush_master(flushed)
            loss_id = wait_for("the loss to be detected", lambda: _one(
                stack, "SELECT loss_id FROM agg.redis_losses"), 60, context=pipeline.tails)[0]
            detected = time.monotonic()
            repaired = wait_for("the loss to be repaired", lambda: _one(
                stack, "SELECT minutes_rebuilt, minutes_reaggregated FROM agg.redis_losses "
                "WHERE repaired_at IS NOT NULL"), 120, poll=0.1, context=pipeline.tails)
            repaired_at = time.monotonic()
            monitors.stop()
            assert not run.done(), "the feed ended before the flush: not mid-stream"
        except BaseException:
            run.stop()
            raise
        finally:
            if monitors is not None:
                monitors.stop()
        run.wait(timeout=120)
        outcome = assert_exact(stack, feed, timeout=180, on_timeout=pipeline.tails)
        pipeline.assert_all_alive()
        worker_log = pipeline.celery_worker.log_path.read_text(errors="replace")

    assert _one(stack, "SELECT count(*) FROM agg.redis_losses")[0] == 1  # recorded once
    # The loss names exactly the flushed master's shards, each rebuilt for some minutes.
    per_shard = dict(sql(stack, "SELECT shard, minutes_rebuilt FROM agg.redis_loss_shards "
                            "WHERE loss_id = :l", l=loss_id))
    assert sorted(per_shard) == lost and all(n >= 1 for n in per_shard.values()), per_shard
    # The kept shards' epochs are the ones seen before the flush; the lost ones are new.
    epochs_after = dict(sql(stack, "SELECT shard, epoch FROM agg.redis_epochs"))
    assert {s: epochs_after[s] for s in kept} == {s: epochs_before[s] for s in kept}
    assert all(epochs_after[s] != epochs_before[s] for s in lost)
    # On the masters: rebuilds swapped in the lost shards' sets on the flushed master only.
    assert monitors is not None
    assert monitors.rebuilt_shards(flushed) == set(lost)
    for node in masters:
        if node != flushed:
            assert monitors.rebuilt_shards(node) == set(), node
    minutes_rebuilt, minutes_reaggregated = repaired
    assert minutes_rebuilt >= 1 and minutes_reaggregated >= 1, repaired
    assert "REDIS LOST ITS DATA on shards " + ", ".join(map(str, lost)) in worker_log
    record_outcome(
        "4b-redis-master-lost",
        injected=f"FLUSHALL of one of 3 Redis Cluster masters mid-stream (shards {lost} of "
                 f"{shards}: counts, snapshots, outbox markers, epochs gone), full pipeline "
                 "running with 2 ingest workers, Celery results in a plain Redis",
        lost_shards=lost, valid_clicks=outcome.valid_clicks, raw_rows_at_flush=raw_at_flush,
        lost_clicks=outcome.lost_clicks, double_counted_clicks=outcome.double_counted_clicks,
        minutes=outcome.minutes, minutes_rebuilt=minutes_rebuilt,
        minutes_reaggregated=minutes_reaggregated,
        seconds_to_detect=round(detected - flushed_at, 2),
        seconds_to_repair=round(repaired_at - flushed_at, 2),
        seconds_to_settle_after_feed=outcome.settle_seconds)
