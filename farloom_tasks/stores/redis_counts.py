"""Per-minute, per-shard click counts in Redis (adapter).

Each shard's keys carry the hash tag ``{shard-N}``, which puts them in one hash
slot: the apply script, a snapshot's MULTI and a rebuild's RENAME touch several
keys of one shard, and in one slot they run on one node of a Redis Cluster,
which spreads the shards over its masters (``redis_client`` makes the client).

Increments are applied by a Lua script that is idempotent per (batch, shard):
it refuses to run twice for the same batch id. That is what lets the ingest
outbox be re-applied after a crash without double counting.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from redis.exceptions import NoScriptError

from farloom_tasks.errors import RedisUnavailable
from farloom_tasks.stores.redis_client import RedisClient, translated_errors

__all__ = ["RedisCounts", "applied_key", "clicks_key", "total_key", "translated_errors"]

KEY_PREFIX = "farloom"
CLICKS_KEY = KEY_PREFIX + ":{{shard-{shard}}}:clicks:{minute}"  # sorted set: ad_id -> clicks
TOTAL_KEY = KEY_PREFIX + ":{{shard-{shard}}}:total:{minute}"  # string: the shard's clicks
APPLIED_KEY = KEY_PREFIX + ":{{shard-{shard}}}:applied:{batch_id}"  # marker: batch applied
# Each shard's data epoch is in stores/redis_epochs.py.

# Increments grouped as {shard: {minute: {ad_id: clicks}}}.
ShardIncrements = Mapping[int, Mapping[int, Mapping[str, int]]]

_APPLY_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local ttl = tonumber(ARGV[1])
local i = 2
for k = 2, #KEYS, 2 do
  local n = tonumber(ARGV[i])
  i = i + 1
  local total = 0
  for _ = 1, n do
    local clicks = tonumber(ARGV[i + 1])
    redis.call('ZINCRBY', KEYS[k], clicks, ARGV[i])
    total = total + clicks
    i = i + 2
  end
  redis.call('INCRBY', KEYS[k + 1], total)
  redis.call('EXPIRE', KEYS[k], ttl)
  redis.call('EXPIRE', KEYS[k + 1], ttl)
end
redis.call('SET', KEYS[1], '1', 'EX', ttl)
return 1
"""
_APPLY_SHA = hashlib.sha1(_APPLY_SCRIPT.encode()).hexdigest()


def clicks_key(shard: int, minute: int) -> str:
    return CLICKS_KEY.format(shard=shard, minute=minute)


def total_key(shard: int, minute: int) -> str:
    return TOTAL_KEY.format(shard=shard, minute=minute)


def applied_key(shard: int, batch_id: str) -> str:
    return APPLIED_KEY.format(shard=shard, batch_id=batch_id)


class RedisCounts:
    """The ingest side's and the aggregation side's view of the per-minute sets."""

    def __init__(self, client: RedisClient, retention_seconds: int) -> None:
        self.client = client
        self.retention_seconds = retention_seconds

    def apply_batch(self, batch_id: str, increments: ShardIncrements) -> None:
        """Add a batch's increments, at most once per (batch_id, shard).

        Safe to call again after a crash at any point: shards already applied
        are skipped by their marker. One EVALSHA per shard, in one pipeline,
        which a cluster client splits by the master holding each shard.
        """
        calls: list[list[Any]] = []
        for shard, minutes in increments.items():
            keys: list[str] = [applied_key(shard, batch_id)]
            args: list[Any] = [self.retention_seconds]
            for minute, ads in minutes.items():
                keys.append(clicks_key(shard, minute))
                keys.append(total_key(shard, minute))
                args.append(len(ads))
                for ad_id, clicks in ads.items():
                    args.append(ad_id)
                    args.append(clicks)
            calls.append(["EVALSHA", _APPLY_SHA, len(keys), *keys, *args])
        with translated_errors():
            try:
                self._execute(calls)
            except NoScriptError:
                # A server that is new, restarted or a promoted replica has an empty
                # script cache (a cluster client loads it on every master). Running
                # every call again is safe: a shard that did apply skips by its marker.
                self.client.script_load(_APPLY_SCRIPT)
                try:
                    self._execute(calls)
                except NoScriptError as exc:  # a failover between the load and the retry
                    raise RedisUnavailable(f"Redis: {exc}") from exc

    def _execute(self, calls: list[list[Any]]) -> None:
        # EVALSHA through execute_command: redis-py's cluster pipeline refuses its
        # evalsha() and registered Script objects, but routes a raw EVALSHA by its keys.
        pipe: Any = self.client.pipeline(transaction=False)
        for call in calls:
            pipe.execute_command(*call)
        pipe.execute()

    def shard_counts(self, shard: int, minute: int) -> list[tuple[str, int]]:
        """Every (ad_id, clicks) of one shard's minute, in no particular order."""
        with translated_errors():
            members: Any = self.client.zrange(clicks_key(shard, minute), 0, -1, withscores=True)
        return [(_text(ad), int(score)) for ad, score in members]

    def shard_total(self, shard: int, minute: int) -> int:
        with translated_errors():
            value = self.client.get(total_key(shard, minute))
        return int(value) if value is not None else 0

    def minute_present(self, minute: int, shard_count: int) -> bool:
        """Whether any shard still holds the minute's keys (else replay must use raw)."""
        with translated_errors():
            pipe = self.client.pipeline(transaction=False)
            for shard in range(shard_count):
                pipe.exists(total_key(shard, minute))
            return any(pipe.execute())


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
