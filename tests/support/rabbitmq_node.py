"""A RabbitMQ node of a test's own, for a scenario that stops and starts its broker.

The machine's node (5672) serves every other test running at the same time, so a
test that restarts RabbitMQ does it on a second node: its own node name, AMQP and
distribution ports on 127.0.0.1, data and logs in a temporary directory, no
plugins (no management listener to clash), and an Erlang cookie of its own (HOME
points at the directory). ``private_node`` starts it and always shuts it down.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from farloom_tasks import processes
from tests.support.ports import free_port

START_SECONDS = 120.0  # a cold node boots in seconds; a loaded 2-core machine is slower


def _bin_dir() -> Path:
    # Debian's rabbitmqctl is a wrapper that switches to the rabbitmq user (and so to
    # its cookie and data directory); the real scripts sit next to the wrapper.
    found = shutil.which("rabbitmq-server")
    if found is None:
        raise RuntimeError("rabbitmq-server is not installed (scripts/ensure-services)")
    return Path(os.path.realpath(found)).parent


@dataclass(frozen=True)
class RabbitNode:
    name: str
    amqp_port: int
    home: Path

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"

    def ctl(self, *args: str, timeout: float = 120.0) -> str:
        """``rabbitmqctl -n <this node> -q ARGS``; its output (fails loudly)."""
        return subprocess.run(
            [str(_bin_dir() / "rabbitmqctl"), "-n", self.name, "-q", *args],
            env={**os.environ, "HOME": str(self.home)}, check=True, capture_output=True,
            text=True, timeout=timeout).stdout


def _await_startup(node: RabbitNode, server: subprocess.Popen[bytes]) -> None:
    # Until the node has registered with epmd, rabbitmqctl fails at once: ask again.
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            node.ctl("await_startup", "--timeout", "10", timeout=40)
            return
        except subprocess.SubprocessError as error:
            if server.poll() is not None or time.monotonic() > deadline:
                log = (node.home / "server.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"the private RabbitMQ node did not start: {error}\n{log}"
                                   ) from error
        time.sleep(0.5)


@dataclass
class NodeProcess:
    """A node and its ``rabbitmq-server`` process, which ``start`` and ``stop`` may cycle."""

    node: RabbitNode
    env: dict[str, str]
    server: subprocess.Popen[bytes] | None = None

    def start(self, *, wait: bool = True) -> None:
        """Start the server (on the same ports and data as before); wait until it is up."""
        with open(self.node.home / "server.log", "ab") as log:
            self.server = subprocess.Popen([str(_bin_dir() / "rabbitmq-server")], env=self.env,
                                           cwd=self.node.home, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            self.await_startup()

    def await_startup(self) -> None:
        assert self.server is not None
        _await_startup(self.node, self.server)

    def stop(self) -> None:
        """Shut the node down (``rabbitmqctl shutdown``), its process gone on return."""
        with contextlib.suppress(subprocess.SubprocessError):  # stopped below either way
            self.node.ctl("shutdown", timeout=60)
        if self.server is not None:
            processes.stop(self.server, grace=30, group=True)
        self.server = None


def node_process(directory: Path, *, name: str | None = None,
                 cookie: str | None = None) -> NodeProcess:
    """Lay out a node under ``directory`` (not started): own name, ports, data, cookie.

    Nodes meant to form a cluster are given the same ``cookie``.
    """
    home = directory / "rabbitmq"
    (home / "mnesia").mkdir(parents=True)
    (home / "log").mkdir()
    node = RabbitNode(name=name or f"farloom-test-{uuid.uuid4().hex[:8]}@localhost",
                      amqp_port=free_port(), home=home)
    (home / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{node.amqp_port}\n")
    (home / "enabled_plugins").write_text("[].\n")
    cookie_file = home / ".erlang.cookie"  # written before either side could make its own
    cookie_file.write_text(cookie or uuid.uuid4().hex.upper())
    cookie_file.chmod(0o400)
    env = {**os.environ, "HOME": str(home), "RABBITMQ_NODENAME": node.name,
           "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
           "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
           "RABBITMQ_MNESIA_BASE": str(home / "mnesia"), "RABBITMQ_LOG_BASE": str(home / "log"),
           "RABBITMQ_PID_FILE": str(home / "node.pid"),
           "RABBITMQ_DIST_PORT": str(free_port())}
    return NodeProcess(node, env)


@contextmanager
def private_node(directory: Path) -> Iterator[RabbitNode]:
    """Start a RabbitMQ node with everything under ``directory``; shut it down after."""
    started = node_process(directory)
    try:
        started.start()
        yield started.node
    finally:
        started.stop()
