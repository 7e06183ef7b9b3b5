"""The pipeline ``farloom bench aggregate`` times, as subprocesses, and the waits on its output.

A Celery worker, the aggregated writer(s) and Celery beat (whose
``close_due_minutes`` tick closes the minute) run against the benchmark's
environment; ``wait_until`` polls agg for a condition and fails fast, with the
log to read, when one of them exits.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from farloom_tasks import processes as child_processes
from farloom_tasks.bench.env import BenchEnv
from farloom_tasks.errors import BenchFailed
from farloom_tasks.stores import db
from farloom_tasks.stores.migrations import PROJECT_ROOT

POLL_SECONDS = 0.01  # s between looks at agg while timing; the figures' resolution
STOP_GRACE = 20.0  # s a stopped worker (and its prefork pool) gets before SIGKILL


@contextlib.contextmanager
def pipeline_processes(env: BenchEnv, logs: Path, grace: float,
               writers: int) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """The Celery worker, the aggregated writers and Celery beat; stopped on exit."""
    variables = {**env.subprocess_env(), "FARLOOM_GRACE_SECONDS": repr(grace)}
    commands = {
        "worker": [sys.executable, "-m", "celery", "-A", "farloom_tasks", "worker",
                   "-l", "INFO", "-c", str(os.cpu_count() or 2), "-n", f"bench-{env.vhost}@%h",
                   "--without-gossip", "--without-mingle", "--without-heartbeat"],
        **{f"writer-{n}": [sys.executable, "-m", "farloom_tasks.cli", "write-aggregates"]
           for n in range(writers)},
        "beat": [sys.executable, "-m", "celery", "-A", "farloom_tasks", "beat", "-l", "INFO",
                 "-s", str(logs / "beat-schedule")],
    }
    started: dict[str, subprocess.Popen[bytes]] = {}
    handles: list[IO[bytes]] = []
    try:
        for name, command in commands.items():
            handle: IO[bytes] = open(logs / f"{name}.log", "wb")  # noqa: SIM115
            handles.append(handle)
            # Own session: stopping it also stops the prefork children, and only them.
            started[name] = subprocess.Popen(command, env=variables, cwd=PROJECT_ROOT,
                                             stdout=handle, stderr=subprocess.STDOUT,
                                             start_new_session=True)
        yield started
    finally:
        for process in started.values():
            child_processes.stop(process, grace=STOP_GRACE, group=True)
        for handle in handles:
            handle.close()


def _scalar(engine: sa.Engine, sql: str, **params: Any) -> Any:
    with db.translated_errors(), engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def wait_until(engine: sa.Engine, sql: str, timeout: float, what: str,
                processes: dict[str, subprocess.Popen[bytes]], logs: Path,
                **params: Any) -> float:
    """Poll until ``sql`` returns a true value; returns the wall-clock time it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _scalar(engine, sql, **params):
            return time.time()
        for name, process in processes.items():
            if process.poll() is not None:
                raise BenchFailed(f"the {name} exited ({process.returncode}) while waiting for "
                                  f"{what}; see {logs / (name + '.log')}")
        time.sleep(POLL_SECONDS)
    raise BenchFailed(f"gave up after {timeout:.0f} s waiting for {what}; logs in {logs}")


def wait_for_each(engine: sa.Engine, conditions: dict[str, str], timeout: float,
                  processes: dict[str, subprocess.Popen[bytes]], logs: Path,
                  **params: Any) -> dict[str, float]:
    """Poll every condition of ``conditions`` (name -> SQL) until each has returned a true
    value once; returns the wall-clock time each was first seen true. Polled together, so
    one that comes true early is not timed late behind another."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, sql in conditions.items():
            if name not in seen and _scalar(engine, sql, **params):
                seen[name] = time.time()
        if len(seen) == len(conditions):
            return seen
        for name, process in processes.items():
            if process.poll() is not None:
                raise BenchFailed(f"the {name} exited ({process.returncode}) while waiting for "
                                  f"{', '.join(sorted(set(conditions) - set(seen)))}; see "
                                  f"{logs / (name + '.log')}")
        time.sleep(POLL_SECONDS)
    raise BenchFailed(f"gave up after {timeout:.0f} s waiting for "
                      f"{', '.join(sorted(set(conditions) - set(seen)))}; logs in {logs}")
