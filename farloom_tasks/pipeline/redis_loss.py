"""Redis data loss: detect it on every close tick, rebuild what it took from raw.

Redis is a cache of raw's counts, but the closer and late re-aggregation read
it as the truth. If it restarts without persistence or is flushed, three
things go at once, silently:
- the per-minute sets of open and recently closed minutes (later increments
  land on empty keys, so a minute closed from them would be partial);
- the snapshots of aggregations in flight and Celery's chord counters (the
  result backend is the same Redis), so those chords may never finish;
- the outbox markers, so an outbox row drained again is counted again.

Detection: Redis keeps a data epoch (``redis_counts.EPOCH_KEY``), written once
per Redis lifetime, and PostgreSQL remembers the epoch it last saw
(``agg.redis_epoch``, ``stores/redis_losses.py``). Each tick compares them
(``core/redis_horizon.judge``, pure); a different epoch is a loss, recorded in
``agg.redis_losses`` under a row lock so that concurrent ticks record it once.
The very first run, with no epoch known, records the epoch and is not a loss.

Repair (``repair``, the task ``repair_redis_loss``): every minute whose Redis
keys the closer or a replay could still trust (``affected_window``, the same
horizon as ``redis_horizon.redis_is_complete``) and that has raw rows is rebuilt
from raw with ``replay.rebuild_from_raw``, which drains the outbox and swaps
the sets in under the exclusive watermark lock, so each is exact from then on.
Then, in one transaction, every one of those minutes that the closer already
started on is marked late (a fresh mark, so no attempt in flight clears it)
and every attempt in flight is made retryable at once: whatever was
published or is being published from a partial set is superseded by a new
revision read from the rebuilt sets, and chords whose bookkeeping died with
Redis are not waited for ``close_retry_seconds``.

While a loss is unrepaired the tick keeps advancing the watermark but claims
nothing, so no minute is published from a partial set after the loss was
seen. A minute claimed before that (between the flush and the tick that saw
it) is covered by the late mark, which is written after its rebuild. The
repair is idempotent (rebuilding or marking twice changes nothing), and its
lease (``repair_started_at``) lets a tick start it again if its task died.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from farloom_tasks.core.redis_horizon import Verdict, affected_window, judge
from farloom_tasks.core.windows import iso
from farloom_tasks.pipeline import replay
from farloom_tasks.stores import close_ledger, redis_losses
from farloom_tasks.stores import raw as raw_clicks
from farloom_tasks.stores.db import Engine
from farloom_tasks.stores.raw import RawStore
from farloom_tasks.stores.redis_counts import RedisCounts
from farloom_tasks.stores.transactions import transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TickCheck:
    """What a tick must do about Redis losses."""

    repair_pending: bool  # an unrepaired loss exists: claim nothing
    start_repair: tuple[int, ...] = ()  # losses whose repair this tick must start


def check(engine: Engine, counts: RedisCounts, *, now: float, retention_seconds: float,
          max_clock_skew_seconds: float, lease_seconds: float) -> TickCheck:
    """Compare epochs, record a loss if Redis lost its data, lease pending repairs."""
    current, _ = counts.ensure_epoch(now)
    with transaction(engine) as cursor:
        verdict = judge(redis_losses.known_epoch(cursor), current)
        if verdict is not Verdict.SAME:
            _record(cursor, current, now, retention_seconds, max_clock_skew_seconds)
        if not redis_losses.count_unrepaired(cursor):
            return TickCheck(repair_pending=False)
        leased = redis_losses.lease_repairs(cursor, lease_seconds)
    return TickCheck(repair_pending=True, start_repair=leased)


def _record(cursor: Any, current: str, now: float, retention_seconds: float,
            max_clock_skew_seconds: float) -> None:
    """Under the epoch row's lock, so concurrent ticks record one loss, not two."""
    if redis_losses.remember_first_epoch(cursor, current):
        log.info("Redis data epoch %s recorded (first run)", current)
        return
    known = redis_losses.lock_known_epoch(cursor)
    if judge(known, current) is not Verdict.LOST:
        return  # a concurrent tick recorded it first
    first, last = affected_window(now, retention_seconds, max_clock_skew_seconds)
    loss_id = redis_losses.record_loss(cursor, old_epoch=known, new_epoch=current,
                                       first=first, last=last)
    log.error("REDIS LOST ITS DATA (epoch %s -> %s): loss %s; closing pauses while minutes "
              "%s..%s are rebuilt from raw", known, current, loss_id, iso(first), iso(last))


@dataclass(frozen=True, slots=True)
class Repaired:
    loss_id: int
    minutes_rebuilt: int
    minutes_reaggregated: int


def repair(engine: Engine, raw: RawStore, counts: RedisCounts, *, loss_id: int,
           shard_count: int, retry_seconds: float) -> Repaired:
    """Rebuild every affected minute from raw, then re-aggregate what was closed."""
    with transaction(engine) as cursor:
        window = redis_losses.unrepaired_window(cursor, loss_id)
        if window is None:
            return Repaired(loss_id, 0, 0)
        minutes = raw_clicks.minutes_with_clicks(cursor, *window)
    for minute in minutes:
        replay.rebuild_from_raw(engine, raw, counts, minute, shard_count)
    with transaction(engine) as cursor:
        # After every rebuild: a minute claimed before its rebuild is marked here.
        reaggregated = close_ledger.mark_closed_minutes_late(cursor, minutes)
        # In-flight attempts may wait on chord counters Redis no longer has.
        close_ledger.make_in_flight_retryable(cursor, retry_seconds)
        redis_losses.record_repaired(cursor, loss_id, minutes_rebuilt=len(minutes),
                                     minutes_reaggregated=reaggregated)
    log.warning("Redis loss %s repaired: %d minutes rebuilt from raw, %d re-aggregated",
                loss_id, len(minutes), reaggregated)
    return Repaired(loss_id, len(minutes), reaggregated)
