"""Failure injection for tests: ``FARLOOM_FAILPOINTS="topk_shard:1"``.

Each entry ``name:n`` makes the first ``n`` calls to ``hit(name)`` raise
InjectedFailure, a TransientError, so the caller's ordinary retry path runs.
Calls are counted in Redis so that every worker process shares one count and
"fails once" means once for the whole stack. Empty by default: then ``hit``
does no I/O at all.
"""

from __future__ import annotations

from typing import Any

from farloom_tasks.errors import TransientError
from farloom_tasks.redis_counts import KEY_PREFIX, translated_errors

COUNTER_KEY = KEY_PREFIX + ":failpoint:{name}"
COUNTER_TTL_SECONDS = 3600


class InjectedFailure(TransientError):
    """Raised on purpose by a failpoint."""


def parse(spec: str) -> dict[str, int]:
    """``"a:1,b:3"`` -> ``{"a": 1, "b": 3}``; raises ValueError on anything else."""
    points: dict[str, int] = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, count = entry.partition(":")
        if not sep or not name or not count.isdigit():
            raise ValueError(f"failpoint {entry!r} must look like name:count")
        points[name] = int(count)
    return points


def hit(points: dict[str, int], name: str, client: Any) -> None:
    """Raise InjectedFailure if ``name`` still has failures left."""
    budget = points.get(name, 0)
    if budget <= 0:
        return
    key = COUNTER_KEY.format(name=name)
    with translated_errors():
        pipe = client.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, COUNTER_TTL_SECONDS)
        calls = int(pipe.execute()[0])
    if calls <= budget:
        raise InjectedFailure(f"failpoint {name} fired ({calls} of {budget})")
