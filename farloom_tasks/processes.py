"""Stopping a child process: ask first, then insist. The one way every caller does it.

Benchmarks and tests start Farloom's own programs as subprocesses (workers, the
API server, a Celery worker with its prefork pool). Each is stopped the same way:
a polite signal (SIGTERM lets a worker flush, ack and write its stats), a grace
period, then SIGKILL. A child started with ``start_new_session=True`` leads its
own process group; ``group=True`` signals the whole group, so a prefork pool or a
shell's children do not outlive their leader.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any


def stop(process: subprocess.Popen[Any], *, grace: float = 15.0, group: bool = False,
         sig: int = signal.SIGTERM) -> int | None:
    """Stop ``process`` and reap it; returns its exit code. Never raises for a dead child.

    ``sig`` is sent first; after ``grace`` seconds without an exit, SIGKILL. With
    ``group``, both go to the process group and, once the leader has exited, any
    member still left is killed too.
    """
    if process.poll() is None:
        _signal(process, sig, group)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal(process, signal.SIGKILL, group)
            process.wait(timeout=grace)
    if group:
        # The leader is gone; its children may not be (a prefork pool).
        _signal(process, signal.SIGKILL, group=True)
    return process.returncode


def _signal(process: subprocess.Popen[Any], sig: int, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
