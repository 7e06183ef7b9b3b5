"""Which shard owns an ad. Pure.

CRC-32 of the UTF-8 ``ad_id`` is stable across processes, machines and Python
versions (unlike the built-in ``hash()``, which is salted per process), and it
runs in C. Because an ad lives in exactly one shard, the union of the shards'
top-k lists always contains the global top k.
"""

from __future__ import annotations

from zlib import crc32


def shard_of(ad_id: str, shard_count: int) -> int:
    return crc32(ad_id.encode("utf-8")) % shard_count
