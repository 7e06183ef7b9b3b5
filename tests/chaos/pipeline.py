"""The whole Farloom pipeline as real processes on a test stack, for chaos scenarios.

Interface (everything a scenario needs)::

    from tests.chaos.pipeline import ClickFeed, Pipeline, assert_exact, record_outcome

    feed = ClickFeed(seed=1)
    with Pipeline(stack, tmp_path, ingest_workers=2) as pipeline:   # starts everything
        run = feed.start_publishing(stack, clicks=50_000, rate=5_000)  # background, confirms
        pipeline.ingest[0].kill(); pipeline.ingest[0].start()        # inject a fault
        run.wait()
        outcome = assert_exact(stack, feed, timeout=180)             # settle, then check

- ``Pipeline`` starts N ingest workers (``farloom ingest``), a Celery worker
  (``celery -A farloom_tasks worker``, 2 prefork processes), one Celery beat
  and the aggregated writer (``farloom write-aggregates``), each a
  ``PipelineProcess`` with ``kill()`` (SIGKILL to the process group),
  ``start()``, ``restart()``, ``rss_bytes()`` and ``tail()``; logs are files in
  the log directory. ``add_beat()`` starts another beat (own schedule file).
  Leaving the ``with`` block stops every process it started, also on failure.
- ``ClickFeed`` (click_feed.py) is the test's own traffic and its ground truth.
- ``assert_exact`` (exactness.py) waits until the pipeline settles and checks
  raw, agg and the dead-letter queue against the feed, click for click.
- ``record_outcome`` writes a scenario's figures to var/reliability/<name>.json.

Settings: a 1 s grace so minutes close soon after the feed moves on, a small
top k and aggregates chunk so rankings have ties and minutes travel in several
parts, and a short close retry so a chord lost with a killed worker is retried
within the test's patience. ``env`` overrides any of them.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from farloom_tasks import celery as farloom_celery
from farloom_tasks.stores import topology
from tests.chaos.click_feed import ClickFeed, FeedRun
from tests.chaos.exactness import Outcome, assert_exact
from tests.chaos.processes import PipelineProcess
from tests.support.stack import PROJECT_ROOT, Stack

__all__ = ["ClickFeed", "FeedRun", "Outcome", "Pipeline", "PipelineProcess", "assert_exact",
           "record_outcome"]

PIPELINE_ENV = {
    "FARLOOM_GRACE_SECONDS": "1",
    "FARLOOM_TOP_K": "10",
    "FARLOOM_AGGREGATE_CHUNK_ADS": "100",
    "FARLOOM_CLOSE_RETRY_SECONDS": "20",
    # Armed with no failures: a scenario sets a failpoint's Redis counter to fire it.
    "FARLOOM_FAILPOINTS": "topk_shard",
    "FARLOOM_LOG_LEVEL": "INFO",
}
RELIABILITY_DIR = PROJECT_ROOT / "var" / "reliability"


class Pipeline:
    """Every pipeline process against ``stack``; a context manager that always cleans up."""

    def __init__(self, stack: Stack, log_dir: Path, *, ingest_workers: int = 1,
                 env: dict[str, str] | None = None) -> None:
        self.stack = stack
        self.log_dir = log_dir
        self.env = {**stack.env, **PIPELINE_ENV, **(env or {})}
        self.ingest = [self._farloom(f"ingest-{i}", ["ingest"], "consuming farloom.clicks")
                       for i in range(ingest_workers)]
        self.celery_worker = PipelineProcess(
            "celery-worker", self._celery(
                "worker", "--loglevel", "INFO", "--concurrency", "2", "--without-gossip",
                "--without-mingle", "--without-heartbeat",
                "--hostname", f"chaos-{stack.run_id}@%h"),
            self.env, log_dir / "celery-worker.log", ready_line="ready.")
        self.beats: list[PipelineProcess] = []
        self.writer = self._farloom("writer", ["write-aggregates"], "consuming farloom.aggregates")

    def __enter__(self) -> Pipeline:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    @property
    def processes(self) -> list[PipelineProcess]:
        return [*self.ingest, self.celery_worker, *self.beats, self.writer]

    def start(self) -> None:
        """Start every process; beat last, once the worker consumes."""
        self._purge_task_queue()
        for process in [*self.ingest, self.writer, self.celery_worker]:
            process.start()
        self.add_beat()

    def add_beat(self) -> PipelineProcess:
        """Start one more ``celery beat`` (its own schedule file); returns it."""
        number = len(self.beats)
        beat = PipelineProcess(
            f"beat-{number}", self._celery(
                "beat", "--loglevel", "INFO",
                "--schedule", str(self.log_dir / f"beat-{number}-schedule")),
            self.env, self.log_dir / f"beat-{number}.log", ready_line="beat: Starting")
        self.beats.append(beat)
        beat.start()
        return beat

    def stop(self) -> None:
        for process in self.processes:
            process.stop()

    def assert_all_alive(self) -> None:
        """Fail with the logs of any process that died without the test killing it."""
        dead = [process for process in self.processes if not process.alive()]
        assert not dead, "pipeline processes died:\n" + "\n".join(p.tail() for p in dead)

    def tails(self, chars: int = 1500) -> str:
        return "\n".join(process.tail(chars) for process in self.processes)

    def _farloom(self, name: str, args: list[str], ready_line: str) -> PipelineProcess:
        return PipelineProcess(name, [sys.executable, "-m", "farloom_tasks.cli", *args],
                               self.env, self.log_dir / f"{name}.log", ready_line)

    def _celery(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "farloom_tasks", *args]

    def _purge_task_queue(self) -> None:
        # A worker killed in an earlier scenario leaves its tasks (retries with an
        # ETA, chord parts) in the queue; they name minutes of a feed that is gone.
        connection = self.stack.amqp()
        try:
            channel = connection.channel()
            topology.declare(channel, topology.QueueType.of(self.stack.settings))  # tasks too
            channel.queue_purge(farloom_celery.TASK_QUEUE)
        finally:
            connection.close()


def record_outcome(scenario: str, **figures: Any) -> Path:
    """Write one JSON line of a scenario's measured figures (and print it for the log)."""
    RELIABILITY_DIR.mkdir(parents=True, exist_ok=True)
    path = RELIABILITY_DIR / f"{scenario}.json"
    line = json.dumps({"scenario": scenario, "recorded_at": time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures}, sort_keys=True)
    path.write_text(line + "\n")
    print(line)
    return path
