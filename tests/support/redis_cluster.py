"""A Redis Cluster of a test session's own: three masters on free loopback ports.

The machine's Redis (6379) is a single server shared by every test, so cluster
tests start their own, the benchmarks' throw-away cluster
(``farloom_tasks/bench/local_redis_cluster.py``: three ``redis-server
--cluster-enabled yes`` on 127.0.0.1 with their files in a temporary directory,
no persistence, joined by ``redis-cli --cluster create``, every node at
``cluster_state:ok`` before it is used, killed and removed after).
``RedisClusterUnderTest`` adds what tests ask of it: which master holds a key or
a shard, and a flush of one master. ``redis_cluster`` is the session fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from farloom_tasks.bench.local_redis_cluster import (
    BUS_OFFSET,
    ClusterNode,
    LocalRedisCluster,
    local_redis_cluster,
)
from farloom_tasks.stores import redis_counts

__all__ = ["BUS_OFFSET", "ClusterNode", "RedisClusterUnderTest", "on_single_redis_and_cluster",
           "private_cluster", "redis_cluster"]


@dataclass(frozen=True)
class RedisClusterUnderTest(LocalRedisCluster):
    """The benchmarks' cluster (nodes, directory, seed_url) with what tests ask of it."""

    def masters(self) -> list[ClusterNode]:
        """The nodes that hold slots now (all three: the cluster has no replicas)."""
        holders = {int(entry[2][1]) for entry in self._slot_ranges()}
        return [node for node in self.nodes if node.port in holders]

    def master_for_key(self, key: str) -> ClusterNode:
        """The master that holds ``key``'s slot (``CLUSTER KEYSLOT``, then the slot map)."""
        slot: Any = self.nodes[0].client().cluster("KEYSLOT", key)
        for start, end, holder, *_replicas in self._slot_ranges():
            if int(start) <= int(slot) <= int(end):
                return self._node(int(holder[1]))
        raise AssertionError(f"no master holds slot {slot} of {key!r}")

    def master_for_shard(self, shard: int) -> ClusterNode:
        """The master holding every key of ``shard`` (they share its hash tag)."""
        return self.master_for_key(redis_counts.clicks_key(shard, 0))

    def shards_on(self, node: ClusterNode, shard_count: int) -> list[int]:
        return [shard for shard in range(shard_count) if self.master_for_shard(shard) == node]

    def flush_master(self, node: ClusterNode) -> None:
        """FLUSHALL on ``node`` alone: what a master that lost its data looks like."""
        node.client().flushall()

    def flush_every_master(self) -> None:
        for node in self.masters():
            self.flush_master(node)

    def client(self) -> redis.RedisCluster:
        return redis.RedisCluster(host="127.0.0.1", port=self.nodes[0].port)

    def _slot_ranges(self) -> list[Any]:
        # CLUSTER SLOTS, raw: [start, end, [host, port, id], replicas...] per range.
        ranges: Any = self.nodes[0].client().cluster("SLOTS")
        return list(ranges)

    def _node(self, port: int) -> ClusterNode:
        return next(node for node in self.nodes if node.port == port)


@contextmanager
def private_cluster() -> Iterator[RedisClusterUnderTest]:
    """Start a three-master Redis Cluster in a temporary directory; kill and remove it after."""
    with local_redis_cluster() as cluster:
        yield RedisClusterUnderTest(nodes=cluster.nodes, directory=cluster.directory)


# Runs a test on the ordinary stack and on one whose counts live on the session's
# private Redis Cluster (the ``stack`` fixture of tests/conftest.py reads the param).
on_single_redis_and_cluster = pytest.mark.parametrize(
    "stack", ["single", "cluster"], indirect=True)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterUnderTest]:
    """The session's private three-master Redis Cluster (started on first use)."""
    with private_cluster() as cluster:
        yield cluster
