"""What Redis holds for a test stack, read by scanning so that extra keys show up too.

On a Redis Cluster the client's SCAN walks every master in turn.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from farloom_tasks.stores import redis_counts
from tests.support.stack import Stack


def redis_minute_counts(stack: Stack) -> Counter[tuple[int, str]]:
    """Every per-(minute, ad) count in Redis, summed over shards."""
    client = stack.redis()
    seen: Counter[tuple[int, str]] = Counter()
    for key in client.scan_iter(match=f"{redis_counts.KEY_PREFIX}:*:clicks:*", count=1000):
        minute = int(bytes(key).decode().rsplit(":", 1)[1])
        members: Any = client.zrange(key, 0, -1, withscores=True)
        for ad, score in members:
            seen[(minute, bytes(ad).decode())] += int(score)
    return seen
