"""Fault injection, a TEST-ONLY seam: ``FARLOOM_FAILPOINTS="after_commit:3,topk_shard:1"``.

One variable, one grammar (``parse``): comma-separated ``name`` or ``name:n``. A
name means one of two kinds of fault, by which call site reaches it:

- **Crash points** (``reach``), in a long-running worker: the n-th time the
  worker reaches ``reach("after_commit")`` it sends SIGKILL to itself, exactly
  as a power cut or the OOM killer would. Armed once at start (``arm``); a
  crash point needs ``n >= 1``. Points of the ingest worker, in the order a
  batch passes them:
  - ``before_commit``: clicks decoded and batched, nothing written;
  - ``after_commit``: PostgreSQL committed (rows and outbox), Redis not yet applied;
  - ``after_redis``: Redis applied, the messages not yet acked;
  - ``after_ack``: the ack is written to the broker's socket.
- **Injected failures** (``hit``), in Celery tasks: raise InjectedFailure (a
  TransientError, so the caller's ordinary retry path runs) while the point has
  failures left. The number left lives in Redis, so every worker process shares
  it and "fails once" means once for the whole stack:
  - ``COUNTER_KEY`` for the point as a whole starts at ``n`` (0 when omitted)
    whenever the key is missing;
  - ``INSTANCE_KEY`` for one call site (say, one minute's shard 0) is consulted
    first, so a test can make exactly that one fail by setting it.

Production never sets the variable: ``reach`` then stays a function that returns
at once, and ``hit`` does no I/O for a point that is not listed.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping
from typing import Any

from farloom_tasks.errors import TransientError
from farloom_tasks.stores.redis_counts import KEY_PREFIX, translated_errors

CRASH_POINTS = ("before_commit", "after_commit", "after_redis", "after_ack")

# Both keys of a point carry its hash tag: the script reads them together, which a
# Redis Cluster allows only within one slot.
COUNTER_KEY = KEY_PREFIX + ":{{failpoint-{name}}}"  # failures left
INSTANCE_KEY = KEY_PREFIX + ":{{failpoint-{name}}}:{instance}"  # failures left for one call site

_TAKE_ONE = """
local mine = tonumber(redis.call('GET', KEYS[2]) or '0')
if mine > 0 then
  redis.call('DECR', KEYS[2])
  return 1
end
local left = redis.call('GET', KEYS[1])
if not left then
  redis.call('SET', KEYS[1], ARGV[1])
  left = ARGV[1]
end
if tonumber(left) > 0 then
  redis.call('DECR', KEYS[1])
  return 1
end
return 0
"""


class InjectedFailure(TransientError):
    """Raised on purpose by a failpoint."""


def parse(spec: str) -> dict[str, int]:
    """``"a:1,b"`` -> ``{"a": 1, "b": 0}``; raises ValueError on anything else."""
    points: dict[str, int] = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, count = entry.partition(":")
        if not name or (sep and not count.isdigit()):
            raise ValueError(f"failpoint {entry!r} must look like name or name:count")
        points[name] = int(count) if sep else 0
    return points


def crash_plan(spec: str) -> dict[str, int]:
    """The crash points of ``"after_commit:3,topk_shard:1"``: ``{"after_commit": 3}``.

    Raises ValueError for a malformed spec, or a crash point without ``n >= 1``.
    """
    plan = {name: n for name, n in parse(spec).items() if name in CRASH_POINTS}
    for name, count in plan.items():
        if count < 1:
            raise ValueError(f"crash point {name!r} must look like {name}:n with n >= 1")
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
    plan = crash_plan(spec)
    reach = _Armed(plan) if plan else _disarmed


def hit(points: dict[str, int], name: str, instance: str, client: Any) -> None:
    """Raise InjectedFailure if ``name`` is listed and still has failures left."""
    if name not in points:
        return
    with translated_errors():
        fired = client.eval(_TAKE_ONE, 2, COUNTER_KEY.format(name=name),
                            INSTANCE_KEY.format(name=name, instance=instance), points[name])
    if fired:
        raise InjectedFailure(f"failpoint {name} fired at {instance}")
