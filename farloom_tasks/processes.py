"""Stopping a process: how a parent stops its child, and how a long-running loop hears it.

``stop`` is the one way every caller stops a child: ask first, then insist.
``on_stop_signals`` is the one way a worker's loop learns it should stop: the
signals ``stop`` (and a terminal's Ctrl-C) send call its action.

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
from collections.abc import Callable
from types import FrameType
from typing import Any

# What asks a Farloom program to stop: ``stop``'s first signal, and Ctrl-C.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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


def on_stop_signals(action: Callable[[int], None]) -> None:
    """Make SIGTERM and SIGINT call ``action(signum)`` in this process's main thread.

    The action runs between two bytecodes of whatever the main thread was doing,
    so it should only set a flag or an event (as a publisher's ``stop()`` does; its
    second call raises KeyboardInterrupt, which is how a second Ctrl-C abandons the
    outstanding confirms); the loop finishes its current work and exits on its own.
    """
    def handler(signum: int, _frame: FrameType | None) -> None:
        action(signum)

    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
