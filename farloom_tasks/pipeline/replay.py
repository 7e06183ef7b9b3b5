"""Replay: recompute a closed minute as a new revision, from Redis or from raw.

From raw, the minute's sorted sets and totals are rebuilt with one grouped
query over ``raw.ad_clicks`` (index ``ad_clicks_minute_ad_idx``), written to
temporary keys in each shard's hash tag and RENAMEd into place (MULTI per shard).

The race with ingest, and why nothing is lost or counted twice: the rebuild
holds the watermark lock in *exclusive* mode from before the grouped query
until after the RENAMEs. Ingest takes that lock in shared mode for each batch
transaction, so
- every batch that committed before the lock is in the query's snapshot; its
  Redis increments are either applied already or still in the outbox, which
  the rebuild drains *before* the query, so no increment of such a batch can
  land on the rebuilt keys afterwards (application is idempotent per batch
  and shard: a worker applying it late adds nothing);
- every batch that commits after the lock is released is not in the snapshot
  and adds its increments on top of the rebuilt keys, and (the minute being
  closed) marks the minute late, which makes the closer aggregate it again.
Ingest waits for the lock only for the length of one minute's rebuild.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from farloom_tasks.core.shards import shard_of
from farloom_tasks.core.windows import iso
from farloom_tasks.errors import FarloomError
from farloom_tasks.pipeline import closing
from farloom_tasks.pipeline.durable_write import drain_outbox
from farloom_tasks.stores.db import WATERMARK_LOCK_KEY
from farloom_tasks.stores.raw import RawStore
from farloom_tasks.stores.redis_counts import (
    KEY_PREFIX,
    RedisCounts,
    clicks_key,
    total_key,
    translated_errors,
)
from farloom_tasks.stores.transactions import transaction

SOURCES = ("auto", "redis", "raw")
REBUILD_KEY = KEY_PREFIX + ":{{shard-{shard}}}:rebuild:{minute}:{token}:{kind}"
REBUILD_TTL_SECONDS = 600  # s; only a crashed rebuild leaves these behind
FETCH_ROWS = 10_000


class ReplayRefused(FarloomError):
    """The minute cannot be replayed (not closed yet, or an unknown source)."""


@dataclass(frozen=True, slots=True)
class Rebuilt:
    minute: int
    clicks: int
    distinct_ads: int


def choose_source(source: str, *, present_in_redis: bool, redis_complete: bool) -> str:
    """``redis`` or ``raw`` for a requested source. Pure.

    ``auto`` reads Redis only when the minute's keys are there and none can have
    expired yet (closing.redis_is_complete); otherwise it rebuilds from raw.
    """
    if source not in SOURCES:
        raise ReplayRefused(f"unknown source {source!r}; use one of {', '.join(SOURCES)}")
    if source == "auto":
        return "redis" if present_in_redis and redis_complete else "raw"
    return source


def rebuild_from_raw(engine: Engine, raw: RawStore, counts: RedisCounts, minute: int,
                     shard_count: int) -> Rebuilt:
    """Replace ``minute``'s Redis sets and totals with raw's counts (see module docstring)."""
    client = counts.client
    token = uuid.uuid4().hex[:12]
    temp = {(shard, kind): REBUILD_KEY.format(shard=shard, minute=minute, token=token, kind=kind)
            for shard in range(shard_count) for kind in ("clicks", "total")}
    totals = [0] * shard_count
    distinct = [0] * shard_count
    with transaction(engine) as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (WATERMARK_LOCK_KEY,))
        drain_outbox(raw, counts)
        cursor.execute("SELECT ad_id, count(*) FROM raw.ad_clicks "
                       "WHERE minute = to_timestamp(%s) GROUP BY ad_id", (minute,))
        with translated_errors():
            # One ZADD per shard per page of rows: a ZADD per ad would make the
            # rebuild of a 100,000-ad minute 100,000 Redis commands.
            while rows := cursor.fetchmany(FETCH_ROWS):
                pages: list[dict[str, int]] = [{} for _ in range(shard_count)]
                for ad_id, clicks in rows:
                    shard = shard_of(ad_id, shard_count)
                    pages[shard][ad_id] = clicks
                    totals[shard] += clicks
                pipe = client.pipeline(transaction=False)
                for shard, page in enumerate(pages):
                    if page:
                        pipe.zadd(temp[(shard, "clicks")], page)
                        distinct[shard] += len(page)
                pipe.execute()
            for shard in range(shard_count):
                swap = client.pipeline(transaction=True)
                if distinct[shard]:
                    swap.set(temp[(shard, "total")], totals[shard])
                    swap.rename(temp[(shard, "clicks")], clicks_key(shard, minute))
                    swap.rename(temp[(shard, "total")], total_key(shard, minute))
                    swap.expire(clicks_key(shard, minute), counts.retention_seconds)
                    swap.expire(total_key(shard, minute), counts.retention_seconds)
                else:
                    swap.delete(clicks_key(shard, minute), total_key(shard, minute))
                swap.execute()
    return Rebuilt(minute=minute, clicks=sum(totals), distinct_ads=sum(distinct))


def prepare(engine: Engine, raw: RawStore, counts: RedisCounts, *, minute: int, source: str,
            shard_count: int, now: float, max_clock_skew_seconds: float) -> tuple[
                closing.Attempt, str]:
    """Make ``minute``'s Redis sets right for ``source`` and claim a new revision.

    The caller then aggregates the returned attempt exactly as the closer does.
    Only closed minutes can be replayed: an open minute is the closer's to finish.
    """
    with transaction(engine) as cursor:
        closed_through = closing.read_watermark(cursor)
    if closed_through is None or minute > closed_through:
        raise ReplayRefused(f"minute {iso(minute)} is not closed yet; it will be "
                            "aggregated when it closes")
    chosen = choose_source(
        source, present_in_redis=counts.minute_present(minute, shard_count),
        redis_complete=closing.redis_is_complete(
            minute, now, max_clock_skew_seconds, counts.retention_seconds))
    if chosen == "raw":
        rebuild_from_raw(engine, raw, counts, minute, shard_count)
    else:
        drain_outbox(raw, counts)
    with transaction(engine) as cursor:
        revision = closing.claim_revision(cursor, minute)
    return closing.Attempt(minute, revision), chosen
