"""One long-running pipeline process (a worker, beat, the writer) that a test can kill.

Each runs in a session of its own, so a SIGKILL reaches the whole process
group: a Celery worker's prefork children die with it, as they would when a
machine loses power. Output goes to a log file that survives restarts (each
start appends), so a failure message can show what the process said.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import psutil

from farloom_tasks import processes
from tests.support.stack import PROJECT_ROOT

STOP_SECONDS = 15.0  # SIGTERM, then SIGKILL after this long


class PipelineProcess:
    """A command that can be started, SIGKILLed and restarted any number of times."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path,
                 ready_line: str | None = None) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.ready_line = ready_line  # printed once the process consumes; None: do not wait
        self.starts = 0
        self.kills = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None, f"{self.name} was never started"
        return self._process.pid

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, ready_timeout: float = 60.0) -> None:
        """Start it; with a ready line, wait (bounded) until this start printed it."""
        assert not self.alive(), f"{self.name} is already running"
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== start {self.starts + 1} of {self.name} ====\n".encode())
            log.flush()
            self._process = subprocess.Popen(self.argv, env=self.env, cwd=PROJECT_ROOT,
                                             stdout=log, stderr=subprocess.STDOUT,
                                             start_new_session=True)
        self.starts += 1
        if self.ready_line is None:
            return
        deadline = time.monotonic() + ready_timeout
        while self.ready_line not in self._log_since(offset):
            if not self.alive() or time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not become ready:\n{self.tail()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the whole process group: no flush, no goodbye."""
        assert self.alive(), f"{self.name} is not running:\n{self.tail()}"
        assert self._process is not None
        processes.stop(self._process, sig=signal.SIGKILL, grace=STOP_SECONDS, group=True)
        self.kills += 1

    def restart(self, ready_timeout: float = 60.0) -> None:
        self.kill()
        self.start(ready_timeout)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL; reaps stray group members either way. Never raises."""
        if self._process is not None:
            processes.stop(self._process, grace=STOP_SECONDS, group=True)

    def rss_bytes(self) -> int:
        """Resident memory of the process and its children (a prefork pool counts)."""
        root = psutil.Process(self.pid)
        total = 0
        for member in [root, *root.children(recursive=True)]:
            try:
                total += member.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total

    def tail(self, chars: int = 3000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- {self.name} ({self.log_path}) ---\n{text[-chars:]}"

    def _log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")
