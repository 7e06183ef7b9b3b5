"""A minute's Redis sets rebuilt under temporary keys, then swapped in (adapter).

The rebuilt counts are written to keys private to one rebuild (a random
token, in each shard's hash tag), and each shard's are RENAMEd over the live
keys in one MULTI, so a reader sees either the old set and total or the new
ones, never a half-written set. The tag keeps a shard's temporary and live keys
in one slot, so on a Redis Cluster each MULTI runs on the master holding it.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence

from farloom_tasks.stores.redis_counts import (
    KEY_PREFIX,
    RedisCounts,
    clicks_key,
    total_key,
    translated_errors,
)

REBUILD_KEY = KEY_PREFIX + ":{{shard-{shard}}}:rebuild:{minute}:{token}:{kind}"


class StagedMinute:
    """One rebuild of ``minute``'s sets across ``shard_count`` shards, or only ``shards``
    of them (the others' keys are left alone)."""

    def __init__(self, counts: RedisCounts, minute: int, shard_count: int,
                 shards: Collection[int] | None = None) -> None:
        self.counts = counts
        self.minute = minute
        self.shard_count = shard_count
        self.shards = tuple(range(shard_count)) if shards is None else tuple(sorted(shards))
        token = uuid.uuid4().hex[:12]
        self._temp = {(shard, kind): REBUILD_KEY.format(shard=shard, minute=minute,
                                                        token=token, kind=kind)
                      for shard in self.shards for kind in ("clicks", "total")}

    def add(self, pages: Sequence[Mapping[str, int]]) -> None:
        """Stage one page of {ad_id: clicks} per shard (index = shard), in one round trip.

        One ZADD per shard per page of rows: a ZADD per ad would make the
        rebuild of a minute with many ads as many Redis commands.
        """
        with translated_errors():
            pipe = self.counts.client.pipeline(transaction=False)
            for shard, page in enumerate(pages):
                if page and shard in self.shards:
                    pipe.zadd(self._temp[(shard, "clicks")], page)
            pipe.execute()

    def swap_in(self, totals: Sequence[int], distinct: Sequence[int]) -> None:
        """Replace each shard's live set and total with the staged ones (MULTI per shard).

        A shard with no ads staged has its live keys deleted.
        """
        minute, retention = self.minute, self.counts.retention_seconds
        with translated_errors():
            for shard in self.shards:
                swap = self.counts.client.pipeline(transaction=True)
                if distinct[shard]:
                    swap.set(self._temp[(shard, "total")], totals[shard])
                    # RENAME as a raw command: redis-py's cluster pipeline blocks its
                    # rename() method, though a RENAME within one slot is allowed.
                    swap.execute_command("RENAME", self._temp[(shard, "clicks")],
                                         clicks_key(shard, minute))
                    swap.execute_command("RENAME", self._temp[(shard, "total")],
                                         total_key(shard, minute))
                    swap.expire(clicks_key(shard, minute), retention)
                    swap.expire(total_key(shard, minute), retention)
                else:
                    swap.delete(clicks_key(shard, minute), total_key(shard, minute))
                swap.execute()
