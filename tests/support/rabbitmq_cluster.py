"""A three-node RabbitMQ cluster of a test's own, on this machine, for quorum-queue scenarios.

Each node is a ``rabbitmq_node.node_process``: its own node name
(``farloom-<run>-<n>@localhost``), AMQP and distribution ports on 127.0.0.1,
data and logs in its own directory, no plugins. The nodes share one Erlang
cookie, which is what lets them (and rabbitmqctl) talk to each other. The
second and third join the first (``stop_app``, ``join_cluster``, ``start_app``).
``private_cluster`` starts them and always shuts every node down.

A node can be stopped and started again on the same ports and data
(``stop_node`` / ``start_node``): it rejoins the cluster by itself.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.rabbitmq_node import NodeProcess, RabbitNode, node_process

NODES = 3


@dataclass
class RabbitCluster:
    members: list[NodeProcess]

    @property
    def nodes(self) -> list[RabbitNode]:
        return [member.node for member in self.members]

    def urls(self, *order: int) -> str:
        """FARLOOM_AMQP_URL naming the nodes ``order`` (indexes), tried in that order."""
        return ",".join(self.nodes[index].amqp_url for index in order)

    def stop_node(self, index: int) -> None:
        """Shut node ``index`` down; the process is gone on return."""
        self.members[index].stop()

    def start_node(self, index: int) -> None:
        """Start node ``index`` again (same name, ports and data); return once it runs."""
        self.members[index].start()

    def running_nodes(self, index: int) -> set[str]:
        """The cluster's running nodes, as node ``index`` sees them."""
        status = json.loads(self.nodes[index].ctl("cluster_status", "--formatter", "json"))
        return set(status["running_nodes"])


@contextmanager
def private_cluster(directory: Path) -> Iterator[RabbitCluster]:
    """Start a three-node cluster with everything under ``directory``; shut it down after."""
    run = uuid.uuid4().hex[:8]
    cookie = uuid.uuid4().hex.upper()
    cluster = RabbitCluster([
        node_process(directory / f"node-{number}", name=f"farloom-{run}-{number}@localhost",
                     cookie=cookie) for number in range(NODES)])
    try:
        for member in cluster.members:  # the boots overlap; each is waited for below
            member.start(wait=False)
        for member in cluster.members:
            member.await_startup()
        first = cluster.nodes[0]
        for node in cluster.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.name)
            node.ctl("start_app")
            node.ctl("await_startup", "--timeout", "60", timeout=90)
        joined = cluster.running_nodes(0)
        if joined != {node.name for node in cluster.nodes}:
            raise RuntimeError(f"the cluster did not form: running {sorted(joined)}")
        yield cluster
    finally:
        for member in reversed(cluster.members):
            with contextlib.suppress(Exception):
                member.stop()
