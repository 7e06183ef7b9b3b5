"""Farloom's Redis operations on the session's private three-master Redis Cluster.

The pipeline's own tests run on the cluster too (``on_single_redis_and_cluster``:
ingest, the SIGKILL crash points, the outbox drain, snapshots, closing, replay);
these check what only a cluster has: slots, script caches per master, the wrong
client mode, status over several masters, and the benchmarks' cluster mode.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from farloom_tasks.core.windows import MINUTE, minute_of
from farloom_tasks.pipeline import replay
from farloom_tasks.stores import redis_client, redis_counts, redis_rebuild, redis_snapshots
from tests.integration.ingest_support import one_click_stream
from tests.support.broker import publish
from tests.support.minute_checks import clicks_for, durable_writer
from tests.support.ports import free_port
from tests.support.redis_cluster import RedisClusterUnderTest
from tests.support.stack import Stack

on_cluster = pytest.mark.parametrize("stack", ["cluster"], indirect=True)


def _slot(cluster: RedisClusterUnderTest, key: str) -> int:
    slot: int = cluster.nodes[0].client().cluster("KEYSLOT", key)
    return int(slot)


def test_every_key_of_a_shard_lives_in_the_slot_of_its_hash_tag(
        redis_cluster: RedisClusterUnderTest) -> None:
    minute, revision = 1_796_000_000, 3
    for shard in range(8):
        keys = [redis_counts.clicks_key(shard, minute), redis_counts.total_key(shard, minute),
                redis_counts.applied_key(shard, "batch-1"),
                redis_snapshots.snapshot_key(shard, minute, revision),
                redis_snapshots.snapshot_total_key(shard, minute, revision),
                redis_rebuild.REBUILD_KEY.format(shard=shard, minute=minute, token="t",
                                                 kind="clicks")]
        assert {_slot(redis_cluster, key) for key in keys} == {
            _slot(redis_cluster, f"{{shard-{shard}}}")}, shard


def _counted(counts: redis_counts.RedisCounts, minute: int) -> Counter[str]:
    found: Counter[str] = Counter()
    for shard in range(8):
        found.update(dict(counts.shard_counts(shard, minute)))
    return found


@on_cluster
def test_a_master_that_lost_its_script_cache_still_counts_each_batch_once(
        stack: Stack, redis_cluster: RedisClusterUnderTest) -> None:
    counts = stack.counts()
    minute = 1_796_000_040
    first = {shard: {minute: {f"ad{shard}": 2}} for shard in range(8)}
    counts.apply_batch("b1", first)
    # A restarted master or a promoted replica has no scripts: NOSCRIPT on its shards.
    victim = redis_cluster.master_for_shard(0)
    victim.client().script_flush()
    assert victim.client().script_exists(redis_counts._APPLY_SHA) == [False]
    counts.apply_batch("b1", first)  # the redelivered batch: every shard skips it
    counts.apply_batch("b2", {0: {minute: {"ad0": 5}}})
    assert victim.client().script_exists(redis_counts._APPLY_SHA) == [True]

    assert _counted(counts, minute) == Counter({**{f"ad{s}": 2 for s in range(8)}, "ad0": 7})
    assert counts.shard_total(0, minute) == 7


@on_cluster
def test_a_minute_rebuilt_from_raw_on_a_cluster_is_exact_and_expires(
        stack: Stack, redis_cluster: RedisClusterUnderTest) -> None:
    minute = minute_of(time.time()) - 3 * MINUTE
    writer, raw = durable_writer(stack)
    per_ad = {f"ad{i}": 1 + i % 4 for i in range(40)}
    writer.write(clicks_for(minute, "rb", per_ad))
    redis_cluster.flush_every_master()

    rebuilt = replay.rebuild_from_raw(stack.engine(), raw, stack.counts(), minute, 8)

    assert (rebuilt.clicks, rebuilt.distinct_ads) == (sum(per_ad.values()), len(per_ad))
    assert _counted(stack.counts(), minute) == Counter(per_ad)
    client = stack.redis()
    keys = list(client.scan_iter(match=f"{redis_counts.KEY_PREFIX}:*"))
    assert {redis_cluster.master_for_key(bytes(key).decode()) for key in keys} == set(
        redis_cluster.masters())  # the rebuilt shards sit on every master
    ttls = [client.ttl(key) for key in keys]
    assert all(0 < ttl <= stack.settings.redis_retention_seconds for ttl in ttls), ttls


@on_cluster
def test_status_on_a_cluster_reports_the_memory_of_every_master(
        stack: Stack, redis_cluster: RedisClusterUnderTest) -> None:
    done = stack.farloom("status", "--json", "--no-celery", timeout=120)

    doc = json.loads(done.stdout)
    assert "redis" not in doc["unreachable"]
    per_master = [int(node.client().info("memory")["used_memory"])
                  for node in redis_cluster.masters()]
    # The sum of three: more than any two masters hold (each holds about the same).
    assert doc["redis_used_memory_bytes"] > sum(sorted(per_master)[:2])


@on_cluster
def test_a_plain_client_pointed_at_a_cluster_node_is_told_to_set_the_cluster_setting(
        stack: Stack) -> None:
    publish(stack, one_click_stream(40, time.time()).bodies)
    env = {**stack.env, "FARLOOM_REDIS_CLUSTER": "0", "FARLOOM_CELERY_RESULT_URL": ""}

    done = stack.farloom("ingest", "--burst", env=env, timeout=120)

    assert done.returncode != 0
    assert "set FARLOOM_REDIS_CLUSTER=1" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("db", "reason"), [
    (0, "is not a cluster node; unset FARLOOM_REDIS_CLUSTER"),
    (5, "a Redis Cluster has db 0 only")])
def test_the_cluster_setting_on_a_redis_that_is_no_cluster_says_so(
        stack: Stack, db: int, reason: str) -> None:
    # db 0 of the shared Redis is only asked for its slots (it answers it has none).
    env = {**stack.env, "FARLOOM_REDIS_CLUSTER": "1",
           "FARLOOM_REDIS_URL": f"redis://127.0.0.1:6379/{db}",
           "FARLOOM_CELERY_RESULT_URL": stack.settings.redis_url}

    done = stack.farloom("ingest", "--burst", env=env, timeout=120)

    assert done.returncode != 0
    assert reason in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr


@on_cluster
def test_the_client_factory_reaches_every_master_for_server_wide_commands(
        stack: Stack, redis_cluster: RedisClusterUnderTest) -> None:
    client = stack.redis()
    assert redis_client.is_cluster(client)
    servers = redis_client.server_info(client, "server")
    assert sorted(servers) == sorted(node.address for node in redis_cluster.masters())
    for shard in range(8):
        client.set(redis_counts.total_key(shard, 0), 1)
    redis_client.flush_db(client)
    assert all(node.client().dbsize() == 0 for node in redis_cluster.masters())
    client.close()


@on_cluster
def test_a_cluster_without_a_plain_redis_for_celery_results_is_refused_at_start(
        stack: Stack) -> None:
    done = stack.farloom("ingest", "--burst", env={**stack.env, "FARLOOM_CELERY_RESULT_URL": ""},
                         timeout=120)

    assert done.returncode == 2
    assert "FARLOOM_CELERY_RESULT_URL is required when FARLOOM_REDIS_CLUSTER=1" in done.stderr
    assert "Traceback" not in done.stderr


@on_cluster
def test_a_quick_ingest_bench_runs_on_a_redis_cluster(stack: Stack, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    leftover = redis_counts.total_key(5, 0)  # the bench flushes every master of the cluster
    stack.redis().set(leftover, 1)

    done = stack.farloom("bench", "ingest", "--quick", "--mode", "preloaded",
                         "--clicks-per-message", "100", "--report", str(report), timeout=300)

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(report.read_text())
    assert result["rows"] and all(row["complete"] for row in result["rows"])
    redis_row = dict(map(tuple, result["machine"]))["Redis"]
    assert "a Redis Cluster of 3 masters" in redis_row
    assert not stack.redis().exists(leftover)


@on_cluster
def test_a_small_aggregate_bench_runs_on_a_redis_cluster(stack: Stack) -> None:
    done = stack.farloom("bench", "aggregate", "--clicks", "20000", "--ads", "2000",
                         "--warmup", "8", "--replays", "1", "--writers", "1",
                         "--timeout", "120", timeout=400)

    assert done.returncode == 0, done.stderr[-3000:]
    assert "Every result was checked exact against the workload" in done.stdout
    assert "on a Redis Cluster of 3 masters" in done.stdout


@on_cluster
def test_a_worker_started_while_no_cluster_node_answers_exits_saying_so(stack: Stack) -> None:
    # The cluster client reads the slot map when it is made: no node, no worker (§7).
    closed = free_port()
    env = {**stack.env, "FARLOOM_REDIS_URL": f"redis://127.0.0.1:{closed}/0"}

    done = stack.farloom("ingest", "--burst", env=env, timeout=120)

    assert done.returncode != 0
    assert "Redis Cluster cannot be connected" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
