"""``farloom generate`` against the real RabbitMQ of the test stack."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter

from farloom_tasks import processes
from farloom_tasks.core.windows import MINUTE
from farloom_tasks.stores import topology
from tests.integration.click_queue import click_ids, drain
from tests.support.broker import queue_depth
from tests.support.stack import PROJECT_ROOT, Stack
from tests.support.waiting import wait_for


def test_generate_publishes_exactly_the_requested_clicks_and_mix(stack: Stack) -> None:
    started = time.time()
    result = stack.farloom("generate", "--count", "3000", "--clicks-per-message", "7",
                           "--duplicate-rate", "0.1", "--invalid-rate", "0.05",
                           "--late-rate", "0.05", "--seed", "7", "--no-progress", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "all confirmed" in result.stdout

    delivered = drain(stack)
    decoded = [message.decoded() for message in delivered]
    clicks = [click for message in decoded for click in message.clicks]
    dead = [letter for message in decoded for letter in message.dead_letters]
    assert len(delivered) == -(-3000 // 7)  # ceil: the last message holds the remainder
    assert len(clicks) + len(dead) == 3000
    mix = _reported_mix(result.stdout)
    # The mix is exact up to one slot per kind (two kinds may fall due together).
    assert abs(mix["duplicates"] - 300) <= 1
    assert abs(mix["invalid"] - 150) <= 1
    assert abs(mix["late"] - 150) <= 1
    assert len(dead) == mix["invalid"]
    assert len({letter.rejection.code for letter in dead}) >= 4  # a variety, not one bug
    ids = Counter(click.click_id for click in clicks)
    assert sum(ids.values()) - len(ids) == mix["duplicates"]
    late = [c for c in clicks if c.clicked_at < started - MINUTE - stack.settings.grace_seconds]
    assert len({c.click_id for c in late}) == mix["late"]
    for message in delivered:
        assert message.properties.delivery_mode == 2
        stamp = topology.published_at(message.properties.headers)
        assert stamp is not None and abs(stamp - time.time()) < 600
    # One message_id per message: the rejected-click ledger's identity of its source.
    assert len({message.properties.message_id for message in delivered}) == len(delivered)
    assert None not in {message.properties.message_id for message in delivered}


def test_the_publisher_survives_a_broker_side_connection_close(stack: Stack) -> None:
    env = {**stack.env, "FARLOOM_PUBLISH_WINDOW_MESSAGES": "2000"}
    count = 40_000
    process = subprocess.Popen(
        [sys.executable, "-m", "farloom_tasks.cli", "generate", "--count", str(count),
         "--rate", "4000", "--run-prefix", "survivor", "--no-progress"],
        env=env, cwd=PROJECT_ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_depth(stack, 8000, timeout=60)
        closed = _close_publisher_connections(stack)
        assert closed == 1
        stdout, stderr = process.communicate(timeout=120)
    finally:
        processes.stop(process, sig=signal.SIGKILL, grace=10)
    assert process.returncode == 0, stderr
    assert "republished after 1 reconnects" in stdout, stdout + stderr

    delivered = drain(stack)
    ids = Counter(click_ids(delivered))
    assert set(ids) == {f"survivor-{n}" for n in range(1, count + 1)}
    # A republished message keeps its message_id: one id per distinct body, both ways.
    bodies_of: dict[str | None, set[bytes]] = {}
    for message in delivered:
        bodies_of.setdefault(message.properties.message_id, set()).add(message.body)
    assert None not in bodies_of and all(len(b) == 1 for b in bodies_of.values())
    assert len(bodies_of) == len({message.body for message in delivered})
    republished = int(stdout.split("; ")[1].split()[0].replace(",", ""))
    resent = sum(ids.values()) - len(ids)
    # Only messages that were in flight (at most the window) may arrive twice.
    assert resent <= republished <= 2000


def _reported_mix(stdout: str) -> dict[str, int]:
    line = next(line for line in stdout.splitlines() if line.startswith("mix: "))
    return {part.split()[1].rstrip(","): int(part.split()[0].replace(",", ""))
            for part in line.removeprefix("mix: ").split(", ")}


def _wait_for_depth(stack: Stack, depth: int, timeout: float) -> None:
    wait_for("the publisher to get going",
             lambda: queue_depth(stack, topology.INGEST_QUEUE) >= depth, timeout, poll=0.05)


def _close_publisher_connections(stack: Stack) -> int:
    # Only the publisher's: the session's Celery worker shares this vhost, and
    # closing its connections first (one rabbitmqctl call each) could outlast the run.
    listing = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "vhost", "client_properties"],
        check=True, capture_output=True, text=True, timeout=60).stdout
    pids = [line.split("\t")[0] for line in listing.splitlines()
            if line.split("\t")[1:2] == [stack.vhost] and "farloom publisher" in line]
    for pid in pids:
        subprocess.run(["rabbitmqctl", "-q", "close_connection", pid, "test: broker-side close"],
                       check=True, capture_output=True, timeout=60)
    return len(pids)
