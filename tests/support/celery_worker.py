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
    """Make this process's ``.delay()`` calls go to the stack (before the app's first use)."""
    settings = stack.settings
    if farloom_celery.settings_of(farloom_celery.app) != settings:
        farloom_celery.configure(farloom_celery.app, settings)


@pytest.fixture(scope="session")
def session_worker(session_stack: Stack,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One worker for the session (starting one costs seconds); yields its log path."""
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    point_app_at(session_stack)
    with running_worker(session_stack, log_path):
        yield log_path


@pytest.fixture
def celery_worker(stack: Stack, session_worker: Path) -> Path:
    """The session's worker, with the stack emptied before the test."""
    return session_worker
