"""Consumer subprocesses for the benchmark: start, wait until attached, sample RSS, collect figures.

Each consumer (Farloom's ``farloom ingest`` or a baseline from ``bench/baselines.py``)
is its own process, so its peak RSS is measured with psutil from outside and
the three compete for the CPU alike. A consumer prints one JSON line of figures
when it exits (the ingest worker also writes it to ``--stats-file`` on SIGTERM).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import psutil

from farloom_tasks import processes
from farloom_tasks.bench.env import BenchEnv
from farloom_tasks.errors import FarloomError
from farloom_tasks.stores import topology

RSS_SAMPLE_SECONDS = 0.1
READY_TIMEOUT = 60.0  # s for a consumer to attach to the queue
EXIT_TIMEOUT = 60.0  # s for a stopped consumer to exit


class Consumer:
    """A consumer subprocess whose RSS is sampled while it runs."""

    def __init__(self, env: BenchEnv, kind: str, args: list[str]) -> None:
        command = ["ingest"] if kind == "farloom" else ["bench", "baseline-consumer", kind]
        self.kind = kind
        self.output = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "farloom_tasks.cli", *command, *args],
            env=env.subprocess_env(), stdout=self.output, stderr=subprocess.DEVNULL, text=True)
        self.peak_rss = 0
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self) -> None:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(self.process.pid)
            while not self._done.wait(RSS_SAMPLE_SECONDS):
                rss = process.memory_info().rss + sum(
                    child.memory_info().rss for child in process.children(recursive=True))
                self.peak_rss = max(self.peak_rss, rss)

    def wait(self, timeout: float) -> bool:
        try:
            self.process.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self) -> None:
        """SIGTERM (the worker then writes its stats), then SIGKILL if it hangs."""
        processes.stop(self.process, grace=EXIT_TIMEOUT)
        self._done.set()
        self._sampler.join(5)

    def figures(self, stats_file: Path | None = None) -> dict[str, Any]:
        """The last JSON line the consumer printed (or its --stats-file)."""
        self.stop()
        texts = [stats_file.read_text()] if stats_file and stats_file.exists() else []
        self.output.seek(0)
        texts.append(self.output.read())
        self.output.close()
        for text in texts:
            for line in reversed(text.splitlines()):
                with contextlib.suppress(orjson.JSONDecodeError):
                    value = orjson.loads(line)
                    if isinstance(value, dict):
                        return value
        raise FarloomError(f"the {self.kind} consumer exited with {self.process.returncode} "
                           "and printed no figures")


def wait_for_consumer(env: BenchEnv, consumer: Consumer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    connection = topology.connect(env.settings.amqp_url)
    try:
        channel = connection.channel()
        while time.monotonic() < deadline and consumer.process.poll() is None:
            with topology.translated_errors():
                frame = channel.queue_declare(topology.INGEST_QUEUE, passive=True)
            if frame.method.consumer_count > 0:
                return
            time.sleep(0.05)
    finally:
        with contextlib.suppress(Exception):
            connection.close()
    raise FarloomError(f"the {consumer.kind} consumer did not start consuming within "
                       f"{READY_TIMEOUT:.0f} s (exit code {consumer.process.poll()})")
