"""A real Celery worker (and beat) subprocess against the test stack; no eager mode.

Import the fixtures into a test module (``from tests.support.celery_worker import
celery_worker``) or use the context managers directly for special settings.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from farloom_tasks import celery as farloom_celery
from farloom_tasks import processes
from tests.support.stack import PROJECT_ROOT, Stack

READY_TIMEOUT_SECONDS = 60
# Small enough that test minutes span several parts and ties cross the top-k boundary.
TEST_ENV = {"FARLOOM_TOP_K": "5", "FARLOOM_AGGREGATE_CHUNK_ADS": "7",
            # Armed with no failures; a test sets the Redis counter to make them fire.
            "FARLOOM_FAILPOINTS": "topk_shard,close_due_minutes"}


def _spawn(stack: Stack, args: list[str], log_path: Path,
           env: dict[str, str] | None) -> subprocess.Popen[bytes]:
    full_env = {**stack.env, **TEST_ENV, **(env or {})}
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "celery", "-A", "farloom_tasks", *args],
                                env=full_env, cwd=PROJECT_ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)


@contextmanager
def running_worker(stack: Stack, log_path: Path,
                   env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A prefork worker with two processes; yields once it consumes, stops it after."""
    process = _spawn(stack, ["worker", "--loglevel", "INFO", "--concurrency", "2",
                             "--without-gossip", "--without-mingle", "--without-heartbeat",
                             "--hostname", f"test-{stack.run_id}-{time.monotonic_ns()}@%h"],
                     log_path, env)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while "ready." not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Celery worker did not start:\n"
                                   + log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        yield process
    finally:
        processes.stop(process, grace=15, group=True)  # the prefork children too


@contextmanager
def running_beat(stack: Stack, tmp_path: Path,
                 env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Celery beat with its schedule file in ``tmp_path``."""
    process = _spawn(stack, ["beat", "--loglevel", "INFO",
                             "--schedule", str(tmp_path / "beat-schedule")],
                     tmp_path / "beat.log", env)
    try:
        yield process
    finally:
        processes.stop(process, grace=15, group=True)  # the prefork children too


def point_app_at(stack: Stack) -> None:
    """Make this process's ``.delay()`` calls and results go to the stack's broker and
    result backend (a session may switch between its single-Redis and cluster stacks)."""
    settings, app = stack.settings, farloom_celery.app
    cached: Any = app  # Celery's private caches, which have no public reset
    if farloom_celery.settings_of(app) != settings:
        farloom_celery.configure(app, settings)
        # The app keeps the broker pool and the result backend it made on first use;
        # dropped, the next call makes them from the new configuration.
        cached._pool = None
        cached.amqp._producer_pool = None
        cached._backend_cache = None
        cached._local.__dict__.pop("backend", None)


@pytest.fixture(scope="session")
def session_worker(session_stack: Stack,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One worker for the session (starting one costs seconds); yields its log path."""
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    point_app_at(session_stack)
    with running_worker(session_stack, log_path):
        yield log_path


@pytest.fixture(scope="session")
def cluster_session_worker(cluster_session_stack: Stack,
                           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The worker of the stack whose counts live on a Redis Cluster; yields its log path."""
    log_path = tmp_path_factory.mktemp("celery-cluster") / "worker.log"
    with running_worker(cluster_session_stack, log_path):
        yield log_path


@pytest.fixture
def celery_worker(stack: Stack, request: pytest.FixtureRequest) -> Path:
    """The session's worker for the test's stack, with the stack emptied before the test."""
    log_path: Path = request.getfixturevalue(
        "cluster_session_worker" if stack.settings.redis_cluster else "session_worker")
    point_app_at(stack)
    return log_path
