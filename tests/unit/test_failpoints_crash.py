"""The crash-point seam: parsing, and SIGKILL on exactly the n-th reach (in a child process)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from farloom_tasks import failpoints


def test_only_known_crash_points_are_taken_from_a_shared_spec() -> None:
    assert failpoints.crash_plan("after_commit:3, topk_shard:1,after_ack:1") == {
        "after_commit": 3, "after_ack": 1}
    assert failpoints.crash_plan("") == {}


@pytest.mark.parametrize("spec", ["after_commit", "after_commit:0", "after_commit:x"])
def test_a_malformed_crash_point_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="after_commit"):
        failpoints.crash_plan(spec)


def test_an_armed_point_kills_the_process_on_its_nth_reach_only() -> None:
    script = (
        "from farloom_tasks import failpoints as c\n"
        "c.arm('after_redis:3')\n"
        "for i in range(5):\n"
        "    c.reach('after_commit')\n"
        "    print(i, flush=True)\n"
        "    c.reach('after_redis')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["0", "1", "2"]


def test_reach_does_nothing_when_disarmed() -> None:
    failpoints.arm("")
    for _ in range(3):
        failpoints.reach("after_commit")
