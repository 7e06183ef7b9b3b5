"""Stopping a child: a polite signal first, SIGKILL after the grace, the whole group if asked."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from farloom_tasks import processes

IGNORES_SIGTERM = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" \
                  "print('ready', flush=True)\ntime.sleep(60)\n"


def _ready(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None and process.stdout.readline().strip() == "ready"


def test_a_child_that_obeys_sigterm_exits_by_it() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert processes.stop(child, grace=10) == -signal.SIGTERM


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    child = subprocess.Popen([sys.executable, "-c", IGNORES_SIGTERM], stdout=subprocess.PIPE,
                             text=True)
    _ready(child)
    started = time.monotonic()
    assert processes.stop(child, grace=0.5) == -signal.SIGKILL
    assert time.monotonic() - started >= 0.5


def test_group_stop_also_ends_a_grandchild_that_outlives_its_parent() -> None:
    spawn_orphan = (
        "import subprocess, sys\n"
        f"p = subprocess.Popen([sys.executable, '-c', {IGNORES_SIGTERM!r}], stdout=sys.stdout)\n"
        "import time; time.sleep(60)\n")
    leader = subprocess.Popen([sys.executable, "-c", spawn_orphan], stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    _ready(leader)
    processes.stop(leader, grace=5, group=True)
    deadline = time.monotonic() + 5
    while _running_in_group(leader.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _running_in_group(leader.pid) == []


def _running_in_group(pgid: int) -> list[str]:
    """Members of the group that still run (a killed orphan may linger as a zombie)."""
    listing = subprocess.run(["ps", "-o", "pid=,stat=", "-g", str(pgid)], capture_output=True,
                             text=True).stdout.split("\n")
    return [line for line in listing if line.strip() and "Z" not in line.split()[1]]


def test_stopping_a_child_that_already_exited_returns_its_code() -> None:
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    child.wait()
    assert processes.stop(child) == 3
