"""Named crash points: a TEST-ONLY seam to SIGKILL a worker at an exact instruction.

A test starts a worker with ``FARLOOM_FAILPOINTS="after_commit:3"`` (read via
``Settings.failpoints``; comma-separated ``name:n`` pairs); the n-th time that
worker reaches ``reach("after_commit")`` it sends SIGKILL to itself, exactly as
a power cut or the OOM killer would. Names this module does not know are left
to ``farloom_tasks.failpoints`` (injected Celery task failures), so one
variable can carry both. Production never sets it: ``reach`` then stays a
function that returns at once.

Points of the ingest worker, in the order a batch passes them:
- ``before_commit``: clicks decoded and batched, nothing written;
- ``after_commit``: PostgreSQL committed (rows and outbox), Redis not yet applied;
- ``after_redis``: Redis applied, the messages not yet acked;
- ``after_ack``: the ack is written to the broker's socket.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping

POINTS = ("before_commit", "after_commit", "after_redis", "after_ack")


def parse(spec: str) -> dict[str, int]:
    """The crash points of ``"after_commit:3,topk_shard:1"``: ``{"after_commit": 3}``.

    Raises ValueError for a malformed entry naming one of POINTS.
    """
    plan: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, count = part.partition(":")
        if name not in POINTS:
            continue
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"crash point {part!r} must look like {name}:n with n >= 1")
        plan[name] = int(count)
    return plan


class _Armed:
    def __init__(self, plan: Mapping[str, int]) -> None:
        self.remaining = dict(plan)

    def __call__(self, name: str) -> None:
        left = self.remaining.get(name)
        if left is None:
            return
        if left <= 1:
            os.kill(os.getpid(), signal.SIGKILL)
        self.remaining[name] = left - 1


def _disarmed(name: str) -> None:
    return None


reach: Callable[[str], None] = _disarmed
"""Call ``reach("point")`` where a test may want the process to die."""


def arm(spec: str) -> None:
    """Arm this process's crash points from ``Settings.failpoints`` (once, at start)."""
    global reach
    plan = parse(spec)
    reach = _Armed(plan) if plan else _disarmed
