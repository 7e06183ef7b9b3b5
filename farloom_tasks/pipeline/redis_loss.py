"""Redis data loss: detect it per shard on every close tick, rebuild what it took from raw.

Redis is a cache of raw's counts, but the closer and late re-aggregation read
it as the truth. If it restarts without persistence or is flushed, or, on a
Redis Cluster, one master loses its dataset, these go at once, silently, for
every shard whose keys were there:
- the shard's per-minute sets of open and recently closed minutes (later
  increments land on empty keys, so a minute closed from them would be partial);
- the shard's snapshots of aggregations in flight; and Celery's chord counters
  when the result backend is that same Redis (a single Redis flushed whole), so
  those chords may never finish;
- the shard's outbox markers (``applied`` keys), so an outbox row drained again
  applies its increments for that shard again.

Detection: each shard keeps a data epoch in its hash tag
(``stores/redis_epochs.py``), so it sits and goes with the shard's keys, and
PostgreSQL remembers each shard's (``agg.redis_epochs``, ``stores/redis_losses.py``).
Each tick compares them (``core/redis_horizon.judge_shards``, pure); the shards
with a different epoch are one loss, recorded with its shards in
``agg.redis_losses`` / ``agg.redis_loss_shards`` under their epoch rows'
locks, so that concurrent ticks record it once. A shard with no epoch known
(the very first run) records its epoch and is not a loss. A flushed single
Redis is a loss of every shard.

Repair (``repair``, the task ``repair_redis_loss``): every minute whose Redis
keys the closer or a replay could still trust (``affected_window``, the same
horizon as ``redis_horizon.redis_is_complete``) and that has raw rows is
rebuilt from raw for the lost shards only, with ``replay.rebuild_from_raw``,
which drains the outbox and swaps in those shards' sets under the exclusive
watermark lock; the other shards' keys are not touched. Then, in one
transaction, every minute in which a lost shard has raw clicks and that the
closer already started on is marked late (a fresh mark, so no attempt in
flight clears it), and attempts in flight are made retryable at once: those of
these minutes, or every one when every shard was lost (the chord counters may
have gone with that Redis). Whatever was published or is being published from
a partial set is superseded by a new revision read from the rebuilt sets.

Why an outbox row drained again after the loss counts nothing twice: for a
shard that kept its data, its applied marker is still there and the script
skips it. For a lost shard the marker is gone and the row's increments are
applied again, but only onto keys of minutes in the affected window (older
minutes are never read from Redis again, newer ones cannot have clicks yet),
which the repair then replaces from raw. The rebuild drains every committed
row under the exclusive lock before its query, setting the markers again, so
an application after the swap finds them and adds nothing; a batch committed
after the lock adds on top of the rebuilt keys, once.

While a loss is unrepaired the tick keeps advancing the watermark but claims
nothing, so no minute is published from a partial set after the loss was
seen. A minute claimed before that (between the loss and the tick that saw
it) is covered by the late mark, which is written after its rebuild. The
repair is idempotent (rebuilding or marking twice changes nothing), and its
lease (``repair_started_at``) lets a tick start it again if its task died.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from farloom_tasks.core.redis_horizon import affected_window, every_shard_lost, judge_shards
from farloom_tasks.core.windows import iso
from farloom_tasks.pipeline import replay
from farloom_tasks.stores import close_ledger, redis_epochs, redis_losses
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


def check(engine: Engine, counts: RedisCounts, *, shard_count: int, now: float,
          retention_seconds: float, max_clock_skew_seconds: float,
          lease_seconds: float) -> TickCheck:
    """Compare every shard's epoch, record a loss of the shards that lost their data,
    lease pending repairs."""
    current = redis_epochs.ensure_epochs(counts.client, shard_count, now)
    with transaction(engine) as cursor:
        verdicts = judge_shards(redis_losses.known_epochs(cursor), current)
        if verdicts.changed:
            _record(cursor, current, verdicts.first_run, verdicts.lost, now, retention_seconds,
                    max_clock_skew_seconds)
        if not redis_losses.count_unrepaired(cursor):
            return TickCheck(repair_pending=False)
        leased = redis_losses.lease_repairs(cursor, lease_seconds)
    return TickCheck(repair_pending=True, start_repair=leased)


def _record(cursor: Any, current: Mapping[int, str], first_run: tuple[int, ...],
            lost: tuple[int, ...], now: float, retention_seconds: float,
            max_clock_skew_seconds: float) -> None:
    """Under the lost shards' epoch rows' locks, so concurrent ticks record one loss, not two."""
    recorded = redis_losses.remember_first_epochs(cursor, {s: current[s] for s in first_run})
    if recorded:
        log.info("Redis data epochs of shards %s recorded (first run)", _names(recorded))
    if not lost:
        return
    known = redis_losses.lock_known_epochs(cursor, lost)
    # Judged again under the locks: a concurrent tick may have recorded some first.
    still_lost = judge_shards(known, {s: current[s] for s in lost}).lost
    if not still_lost:
        return
    first, last = affected_window(now, retention_seconds, max_clock_skew_seconds)
    loss_id = redis_losses.record_loss(
        cursor, epochs={s: (known[s], current[s]) for s in still_lost}, first=first, last=last)
    log.error("REDIS LOST ITS DATA on shards %s (new epochs): loss %s; closing pauses while "
              "their minutes %s..%s are rebuilt from raw", _names(still_lost), loss_id,
              iso(first), iso(last))


def _names(shards: tuple[int, ...]) -> str:
    return ", ".join(str(s) for s in shards)


@dataclass(frozen=True, slots=True)
class Repaired:
    loss_id: int
    minutes_rebuilt: int  # minutes with raw clicks of a lost shard, rebuilt from raw
    minutes_reaggregated: int
    shards: tuple[int, ...] = ()  # the shards rebuilt


def repair(engine: Engine, raw: RawStore, counts: RedisCounts, *, loss_id: int,
           shard_count: int, retry_seconds: float) -> Repaired:
    """Rebuild the lost shards of every affected minute from raw, then re-aggregate
    the closed minutes they have clicks in."""
    with transaction(engine) as cursor:
        loss = redis_losses.unrepaired(cursor, loss_id)
        if loss is None:
            return Repaired(loss_id, 0, 0)
        minutes = raw_clicks.minutes_with_clicks(cursor, loss.first, loss.last)
    shards = loss.shards or tuple(range(shard_count))
    shards = tuple(s for s in shards if s < shard_count)
    rebuilt: list[int] = []
    shard_minutes = dict.fromkeys(shards, 0)
    for minute in minutes:
        done = replay.rebuild_from_raw(engine, raw, counts, minute, shard_count, shards)
        if done.shards_with_clicks:
            rebuilt.append(minute)
        for shard in done.shards_with_clicks:
            shard_minutes[shard] += 1
    with transaction(engine) as cursor:
        # After every rebuild: a minute claimed before its rebuild is marked here.
        reaggregated = close_ledger.mark_closed_minutes_late(cursor, rebuilt)
        # In-flight attempts may wait on chord counters a whole-Redis loss took.
        close_ledger.make_in_flight_retryable(
            cursor, retry_seconds,
            None if every_shard_lost(shards, shard_count) else rebuilt)
        redis_losses.record_repaired(cursor, loss_id, minutes_rebuilt=len(rebuilt),
                                     minutes_reaggregated=reaggregated,
                                     shard_minutes=shard_minutes)
    log.warning("Redis loss %s repaired: shards %s rebuilt from raw in %d minutes, "
                "%d minutes re-aggregated", loss_id, _names(shards), len(rebuilt), reaggregated)
    return Repaired(loss_id, len(rebuilt), reaggregated, shards)
