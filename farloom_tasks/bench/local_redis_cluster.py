"""A throw-away three-master Redis Cluster on this machine, for benchmarks and tests.

Three ``redis-server --cluster-enabled yes`` processes on 127.0.0.1, each with its
node file and working directory in a temporary directory and no persistence,
joined by ``redis-cli --cluster create`` with no replicas. ``local_redis_cluster``
starts it, waits until every node reports ``cluster_state:ok`` and knows every
slot, and always kills the servers and removes the directory afterwards.

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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from farloom_tasks import processes

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
class LocalRedisCluster:
    nodes: tuple[ClusterNode, ...]
    directory: Path

    @property
    def seed_url(self) -> str:
        """What FARLOOM_REDIS_URL holds for this cluster: the first node, db 0."""
        return f"redis://{self.nodes[0].address}/0"

    def flush_every_node(self) -> None:
        for node in self.nodes:
            node.client().flushall()


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


def _await(what: str, check: Callable[[], bool], servers: list[subprocess.Popen[bytes]],
           directory: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        with contextlib.suppress(redis.RedisError):
            if check():
                return
        if any(server.poll() is not None for server in servers) or time.monotonic() > deadline:
            raise RuntimeError(f"the local Redis Cluster never {what}\n{_log_tail(directory)}")
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
def local_redis_cluster() -> Iterator[LocalRedisCluster]:
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
        yield LocalRedisCluster(nodes=tuple(nodes), directory=directory)
    finally:
        _stop(servers)
        shutil.rmtree(directory, ignore_errors=True)
