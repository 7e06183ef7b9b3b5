"""A Redis Cluster of a test session's own: three masters on free loopback ports.

The machine's Redis (6379) is a single server shared by every test, so cluster
tests start their own: three ``redis-server --cluster-enabled yes`` processes on
127.0.0.1, each with its node file and working directory in a temporary
directory, no persistence, joined by ``redis-cli --cluster create`` with no
replicas. ``private_cluster`` starts it, waits until every node reports
``cluster_state:ok`` and knows every slot, and always kills the servers and
removes the directory. ``redis_cluster`` is the session fixture over it.

A cluster node also listens on its port + 10000 (the cluster bus), so ports are
drawn below the kernel's ephemeral range, where nothing the kernel hands out
lands, with both the port and its bus port free.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from farloom_tasks import processes
from farloom_tasks.stores import redis_counts

MASTERS = 3
BUS_OFFSET = 10000  # Redis Cluster's bus port is the client port + 10000
PORT_RANGE = (20000, 22767)  # + BUS_OFFSET stays below the ephemeral range (32768)
START_SECONDS = 60.0
START_ATTEMPTS = 3  # a drawn port may be taken between the check and redis-server's bind


@dataclass(frozen=True)
class ClusterNode:
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        """A plain client of this node alone (commands for keys it does not hold fail)."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)


@dataclass(frozen=True)
class RedisClusterUnderTest:
    nodes: tuple[ClusterNode, ...]
    directory: Path

    @property
    def seed_url(self) -> str:
        """What FARLOOM_REDIS_URL holds for this cluster: the first node, db 0."""
        return f"redis://{self.nodes[0].address}/0"

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


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _draw_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = random.randint(*PORT_RANGE)
        if port not in ports and _free(port) and _free(port + BUS_OFFSET):
            ports.append(port)
    return ports


def _start_server(port: int, directory: Path) -> subprocess.Popen[bytes]:
    node_dir = directory / str(port)
    node_dir.mkdir()
    with open(node_dir / "server.log", "wb") as log:
        return subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
             "--cluster-enabled", "yes", "--cluster-config-file", str(node_dir / "nodes.conf"),
             "--dir", str(node_dir), "--save", "", "--appendonly", "no",
             "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _log_tail(directory: Path) -> str:
    return "\n".join(f"--- {log.parent.name}\n{log.read_text(errors='replace')[-1500:]}"
                     for log in sorted(directory.glob("*/server.log")))


def _await(what: str, check: object, servers: list[subprocess.Popen[bytes]],
           directory: Path) -> None:
    assert callable(check)
    deadline = time.monotonic() + START_SECONDS
    while True:
        with contextlib.suppress(redis.RedisError):
            if check():
                return
        if any(server.poll() is not None for server in servers) or time.monotonic() > deadline:
            raise RuntimeError(f"the private Redis Cluster never {what}\n{_log_tail(directory)}")
        time.sleep(0.1)


def _cluster_ready(nodes: list[ClusterNode]) -> bool:
    for node in nodes:
        info = node.client().cluster("info")
        if (info.get("cluster_state") != "ok"
                or int(info.get("cluster_slots_ok", 0)) != 16384
                or int(info.get("cluster_known_nodes", 0)) != len(nodes)):
            return False
    return True


def _start_cluster(directory: Path, servers: list[subprocess.Popen[bytes]]) -> list[ClusterNode]:
    nodes = [ClusterNode(port) for port in _draw_ports(MASTERS)]
    servers.extend(_start_server(node.port, directory) for node in nodes)
    _await("answered PING", lambda: all(node.client().ping() for node in nodes),
           servers, directory)
    subprocess.run(["redis-cli", "--cluster", "create", *(node.address for node in nodes),
                    "--cluster-replicas", "0", "--cluster-yes"],
                   check=True, capture_output=True, timeout=START_SECONDS)
    _await("reached cluster_state:ok on every node", lambda: _cluster_ready(nodes),
           servers, directory)
    return nodes


def _stop(servers: list[subprocess.Popen[bytes]]) -> None:
    for server in servers:
        processes.stop(server, grace=10, group=True)
    servers.clear()


@contextmanager
def private_cluster() -> Iterator[RedisClusterUnderTest]:
    """Start a three-master Redis Cluster in a temporary directory; kill and remove it after."""
    directory = Path(tempfile.mkdtemp(prefix="farloom-redis-cluster-"))
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                nodes = _start_cluster(directory, servers)
                break
            except (RuntimeError, subprocess.SubprocessError):
                _stop(servers)
                if attempt == START_ATTEMPTS:
                    raise
                for node_dir in directory.iterdir():
                    shutil.rmtree(node_dir)
        yield RedisClusterUnderTest(nodes=tuple(nodes), directory=directory)
    finally:
        _stop(servers)
        shutil.rmtree(directory, ignore_errors=True)


# Runs a test on the ordinary stack and on one whose counts live on the session's
# private Redis Cluster (the ``stack`` fixture of tests/conftest.py reads the param).
on_single_redis_and_cluster = pytest.mark.parametrize(
    "stack", ["single", "cluster"], indirect=True)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterUnderTest]:
    """The session's private three-master Redis Cluster (started on first use)."""
    with private_cluster() as cluster:
        yield cluster
