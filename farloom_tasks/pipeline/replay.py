"""Replay: recompute a closed minute as a new revision, from Redis or from raw.

From raw, the minute's sorted sets and totals are rebuilt with one grouped
query over ``raw.ad_clicks`` (index ``ad_clicks_minute_ad_idx``), written to
temporary keys in each shard's hash tag and RENAMEd into place (MULTI per shard;
``stores/redis_rebuild.py``).

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

import math
from collections.abc import Collection
from dataclasses import dataclass

from farloom_tasks.core import increments
from farloom_tasks.core.attempts import Attempt
from farloom_tasks.core.redis_horizon import redis_is_complete
from farloom_tasks.core.replay_source import ReplayRefused, choose_source
from farloom_tasks.core.windows import deadline_of, iso
from farloom_tasks.pipeline import closing, dropped_minutes
from farloom_tasks.pipeline.durable_write import drain_outbox
from farloom_tasks.stores import close_ledger
from farloom_tasks.stores import raw as raw_clicks
from farloom_tasks.stores.db import Engine
from farloom_tasks.stores.raw import RawStore
from farloom_tasks.stores.redis_counts import RedisCounts
from farloom_tasks.stores.redis_rebuild import StagedMinute
from farloom_tasks.stores.transactions import transaction

FETCH_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class Rebuilt:
    minute: int
    clicks: int  # of the shards rebuilt
    distinct_ads: int
    shards_with_clicks: tuple[int, ...] = ()  # the rebuilt shards raw has clicks of


def rebuild_from_raw(engine: Engine, raw: RawStore, counts: RedisCounts, minute: int,
                     shard_count: int, shards: Collection[int] | None = None) -> Rebuilt:
    """Replace ``minute``'s Redis sets and totals with raw's counts (see module docstring).

    ``shards`` limits the rebuild to those shards (a Redis loss that took only
    them); the other shards' keys are not touched. None = every shard.
    """
    staged = StagedMinute(counts, minute, shard_count, shards)
    totals = [0] * shard_count
    distinct = [0] * shard_count
    with transaction(engine) as cursor:
        close_ledger.lock_watermark(cursor)
        drain_outbox(raw, counts)
        for rows in raw_clicks.ad_counts_in_pages(cursor, minute, FETCH_ROWS):
            pages = increments.by_shard(rows, shard_count)
            for shard, page in enumerate(pages):
                if shard in staged.shards:
                    totals[shard] += sum(page.values())
                    distinct[shard] += len(page)
            staged.add(pages)
        staged.swap_in(totals, distinct)
    return Rebuilt(minute=minute, clicks=sum(totals), distinct_ads=sum(distinct),
                   shards_with_clicks=tuple(s for s in staged.shards if distinct[s]))


def not_due_reason(minute: int, grace_seconds: float) -> str:
    deadline = math.ceil(deadline_of(minute, grace_seconds))
    return (f"minute {iso(minute)} is not due yet: it closes at {iso(deadline)} "
            f"(its end plus {grace_seconds:g} s of grace) and is aggregated then")


def prepare(engine: Engine, raw: RawStore, counts: RedisCounts, *, minute: int, source: str,
            shard_count: int, now: float, max_clock_skew_seconds: float,
            grace_seconds: float) -> tuple[Attempt, str]:
    """Make ``minute``'s Redis sets right for ``source`` and claim a new revision.

    The caller then aggregates the returned attempt exactly as the closer does.
    A minute past its deadline that beat has not closed yet is closed here first
    (``closing.close_due_now``, beat's rule); a minute not due yet is refused: it is
    the closer's to finish. A minute whose raw or per-minute rows retention dropped
    is refused (dropped_minutes.MinutesDropped): replaying it would publish it partial.
    """
    with transaction(engine) as cursor:
        closed_through = closing.close_due_now(cursor, now, grace_seconds)
        if closed_through is not None and minute <= closed_through:
            dropped_minutes.refuse_if_dropped(cursor, minute, minute, action="replay")
    if closed_through is None or minute > closed_through:
        raise ReplayRefused(not_due_reason(minute, grace_seconds))
    chosen = choose_source(
        source, present_in_redis=counts.minute_present(minute, shard_count),
        redis_complete=redis_is_complete(
            minute, now, max_clock_skew_seconds, counts.retention_seconds))
    if chosen == "raw":
        rebuild_from_raw(engine, raw, counts, minute, shard_count)
    else:
        drain_outbox(raw, counts)
    with transaction(engine) as cursor:
        revision = close_ledger.claim_revision(cursor, minute)
    return Attempt(minute, revision), chosen
