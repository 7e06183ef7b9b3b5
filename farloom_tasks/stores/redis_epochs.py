"""Each shard's Redis data epoch (adapter): how a close tick notices that a shard's keys went.

A shard's epoch key sits in the shard's hash tag, so it lives with the shard's
sets, totals and applied markers: on a single Redis in the same db, on a Redis
Cluster on the same master. Whatever takes the shard's data (a FLUSHDB, a
restart without persistence, a master that lost its dataset) takes its epoch
too, and the next ``ensure_epochs`` writes a new one. The epoch has no expiry
and is written only with ``SET NX``, so while a shard keeps its data its epoch
never changes. PostgreSQL remembers the epochs it saw (``stores/redis_losses.py``);
``core/redis_horizon.judge_shards`` compares the two.
"""

from __future__ import annotations

from typing import Any

from farloom_tasks.stores.redis_counts import KEY_PREFIX, translated_errors

EPOCH_KEY = KEY_PREFIX + ":{{shard-{shard}}}:epoch"  # the shard's data epoch (creation time)


def epoch_key(shard: int) -> str:
    return EPOCH_KEY.format(shard=shard)


def ensure_epochs(client: Any, shard_count: int, now: float) -> dict[int, str]:
    """Every shard's epoch, ``{shard: epoch}``; a shard that has none gets ``repr(now)``.

    One pipeline (on a cluster, one per master) of SET NX then GET per shard:
    two ticks racing after a loss both read the epoch the first one wrote.
    """
    with translated_errors():
        pipe = client.pipeline(transaction=False)
        for shard in range(shard_count):
            pipe.set(epoch_key(shard), repr(now), nx=True)
            pipe.get(epoch_key(shard))
        replies = pipe.execute()
    epochs: dict[int, str] = {}
    for shard in range(shard_count):
        value = replies[2 * shard + 1]
        # None only if the key went again between the SET and the GET: judged next tick.
        epochs[shard] = _text(value) if value is not None else repr(now)
    return epochs


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
