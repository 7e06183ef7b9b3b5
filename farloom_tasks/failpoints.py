"""Failure injection for tests: ``FARLOOM_FAILPOINTS="topk_shard:1"``.

Each listed point ``name[:n]`` may fire: ``hit(name, instance)`` raises
InjectedFailure (a TransientError, so the caller's ordinary retry path runs)
while the point has failures left. The number left lives in Redis, so every
worker process shares it and "fails once" means once for the whole stack:
- ``COUNTER_KEY`` for the point as a whole starts at ``n`` (0 when omitted)
  whenever the key is missing;
- ``INSTANCE_KEY`` for one call site (say, one minute's shard 0) is consulted
  first, so a test can make exactly that one fail by setting it.
Unlisted points do no I/O.
"""

from __future__ import annotations

from typing import Any

from farloom_tasks.errors import TransientError
from farloom_tasks.stores.redis_counts import KEY_PREFIX, translated_errors

COUNTER_KEY = KEY_PREFIX + ":failpoint:{name}"  # failures left
INSTANCE_KEY = KEY_PREFIX + ":failpoint:{name}:{instance}"  # failures left for one call site

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


def hit(points: dict[str, int], name: str, instance: str, client: Any) -> None:
    """Raise InjectedFailure if ``name`` is listed and still has failures left."""
    if name not in points:
        return
    with translated_errors():
        fired = client.eval(_TAKE_ONE, 2, COUNTER_KEY.format(name=name),
                            INSTANCE_KEY.format(name=name, instance=instance), points[name])
    if fired:
        raise InjectedFailure(f"failpoint {name} fired at {instance}")
