"""The private Redis Cluster the cluster tests run on, and how the shards spread over it."""

from __future__ import annotations

import socket
from collections import Counter

import redis

from farloom_tasks.settings import Settings
from farloom_tasks.stores import redis_counts
from tests.support.redis_cluster import BUS_OFFSET, RedisClusterUnderTest, private_cluster


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_a_private_cluster_starts_with_three_masters_and_leaves_nothing_behind() -> None:
    with private_cluster() as cluster:
        masters = cluster.masters()
        assert len(masters) == 3
        for node in masters:
            assert node.client().cluster("info")["cluster_state"] == "ok"
        client = cluster.client()
        client.set("farloom-test:{a}", "1")
        client.set("farloom-test:{b}", "2")
        assert client.get("farloom-test:{a}") == b"1" and client.get("farloom-test:{b}") == b"2"
        client.close()
        ports = [node.port for node in cluster.nodes]
        directory = cluster.directory
        assert directory.is_dir()
    assert not directory.exists()
    for port in ports:
        assert not _listening(port) and not _listening(port + BUS_OFFSET)


def test_flushing_one_master_empties_only_the_keys_it_holds(
        redis_cluster: RedisClusterUnderTest) -> None:
    client = redis_cluster.client()
    redis_cluster.flush_every_master()
    shards = range(Settings.from_env({}).shard_count)
    victim = redis_cluster.master_for_shard(0)
    keys = {shard: f"farloom-test:{{shard-{shard}}}:probe" for shard in shards}
    for key in keys.values():
        client.set(key, "1")
    redis_cluster.flush_master(victim)
    kept = {shard for shard, key in keys.items() if client.exists(key)}
    assert kept == set(shards) - set(redis_cluster.shards_on(victim, len(shards)))
    assert kept, "the other masters keep their shards"
    redis_cluster.flush_every_master()
    client.close()


def test_eight_shards_spread_over_every_master_of_three(
        redis_cluster: RedisClusterUnderTest) -> None:
    masters = redis_cluster.masters()
    assert len(masters) == 3
    holders = Counter(redis_cluster.master_for_shard(shard) for shard in range(8))
    assert set(holders) == set(masters)
    # redis-cli splits the slots in even thirds; the tags' slots fall 4, 2 and 2.
    assert sorted(holders.values()) == [2, 2, 4]
    # The same, as the client a Farloom process uses routes them.
    client = redis_cluster.client()
    routed = {client.get_node_from_key(  # type: ignore[no-untyped-call]
        redis_counts.clicks_key(shard, 0)).port for shard in range(8)}
    assert routed == {node.port for node in masters}
    client.close()


def test_a_cluster_node_refuses_a_key_of_another_master(
        redis_cluster: RedisClusterUnderTest) -> None:
    # Why a plain client cannot work on a cluster: the seed redirects what it does not hold.
    seed = redis_cluster.nodes[0]
    elsewhere = next(shard for shard in range(8) if redis_cluster.master_for_shard(shard) != seed)
    try:
        seed.client().get(redis_counts.total_key(elsewhere, 0))
    except redis.exceptions.ResponseError as error:
        assert "MOVED" in str(error) or isinstance(error, redis.exceptions.MovedError)
    else:
        raise AssertionError("the seed answered a key of another master")
