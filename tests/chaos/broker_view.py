"""What a chaos test reads while a fault is on: queue counts and raw rows, never via the workers."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import sqlalchemy as sa

from farloom_tasks import topology
from tests.stack import Stack


def queue_counts(stack: Stack, queue: str = topology.INGEST_QUEUE) -> tuple[int, int]:
    """(ready, unacknowledged) messages of a queue, from rabbitmqctl."""
    done = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "-p", stack.vhost, "--no-table-headers",
         "name", "messages_ready", "messages_unacknowledged"],
        capture_output=True, text=True, timeout=60, check=True)
    for line in done.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == queue:
            return int(parts[1]), int(parts[2])
    raise AssertionError(f"queue {queue} not found in {done.stdout!r}")


def raw_rows(stack: Stack) -> int:
    engine = stack.engine()
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM raw.ad_clicks")).scalar_one())
    finally:
        engine.dispose()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> float:
    """Wait (bounded) until ``condition()``; return the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - started
