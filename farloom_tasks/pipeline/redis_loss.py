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
(``agg.redis_epoch``). Each tick compares them (``judge``, pure); a different
epoch is a loss, recorded in ``agg.redis_losses`` under a row lock so that
concurrent ticks record it once. The very first run, with no epoch known,
records the epoch and is not a loss.

Repair (``repair``, the task ``repair_redis_loss``): every minute whose Redis
keys the closer or a replay could still trust (``affected_window``, the same
horizon as ``closing.redis_is_complete``) and that has raw rows is rebuilt
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
from enum import Enum
from typing import Any

from sqlalchemy.engine import Engine

from farloom_tasks.core.windows import iso, minute_of
from farloom_tasks.pipeline import replay
from farloom_tasks.stores.raw import RawStore
from farloom_tasks.stores.redis_counts import RedisCounts
from farloom_tasks.stores.transactions import transaction

log = logging.getLogger(__name__)


class Verdict(Enum):
    FIRST_RUN = "first_run"  # no epoch known yet: remember this one
    SAME = "same"  # Redis still holds what it held
    LOST = "lost"  # a new epoch: Redis lost its data since the last tick


def judge(known_epoch: str | None, current_epoch: str) -> Verdict:
    """Compare the epoch PostgreSQL remembers with the one Redis has now. Pure."""
    if known_epoch is None:
        return Verdict.FIRST_RUN
    return Verdict.SAME if known_epoch == current_epoch else Verdict.LOST


def affected_window(now: float, retention_seconds: float,
                    max_clock_skew_seconds: float) -> tuple[int, int]:
    """First and last minute whose Redis keys may be read as complete again. Pure.

    Older minutes are aggregated and replayed from raw anyway
    (``closing.redis_is_complete`` is false for them, and only gets falser as
    time passes); newer ones than ``now + skew`` cannot have clicks yet.
    """
    first = minute_of(now - retention_seconds + max_clock_skew_seconds)
    last = minute_of(now + max_clock_skew_seconds)
    return min(first, last), last


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
        cursor.execute("SELECT epoch FROM agg.redis_epoch WHERE id = 1")
        row = cursor.fetchone()
        verdict = judge(None if row is None else str(row[0]), current)
        if verdict is not Verdict.SAME:
            _record(cursor, current, now, retention_seconds, max_clock_skew_seconds)
        cursor.execute("SELECT count(*) FROM agg.redis_losses WHERE repaired_at IS NULL")
        pending = int(cursor.fetchone()[0])
        if not pending:
            return TickCheck(repair_pending=False)
        cursor.execute("""
            UPDATE agg.redis_losses SET repair_started_at = now()
            WHERE repaired_at IS NULL AND (repair_started_at IS NULL
                  OR repair_started_at < now() - make_interval(secs => %s))
            RETURNING loss_id
        """, (lease_seconds,))
        leased = tuple(sorted(int(r[0]) for r in cursor.fetchall()))
    return TickCheck(repair_pending=True, start_repair=leased)


def _record(cursor: Any, current: str, now: float, retention_seconds: float,
            max_clock_skew_seconds: float) -> None:
    """Under the epoch row's lock, so concurrent ticks record one loss, not two."""
    cursor.execute("INSERT INTO agg.redis_epoch (id, epoch) VALUES (1, %s) "
                   "ON CONFLICT (id) DO NOTHING RETURNING epoch", (current,))
    if cursor.fetchone() is not None:
        log.info("Redis data epoch %s recorded (first run)", current)
        return
    cursor.execute("SELECT epoch FROM agg.redis_epoch WHERE id = 1 FOR UPDATE")
    known = str(cursor.fetchone()[0])
    if judge(known, current) is not Verdict.LOST:
        return  # a concurrent tick recorded it first
    first, last = affected_window(now, retention_seconds, max_clock_skew_seconds)
    cursor.execute("UPDATE agg.redis_epoch SET epoch = %s, seen_at = now() WHERE id = 1",
                   (current,))
    cursor.execute("""
        INSERT INTO agg.redis_losses (old_epoch, new_epoch, window_start, window_end)
        VALUES (%s, %s, to_timestamp(%s), to_timestamp(%s)) RETURNING loss_id
    """, (known, current, first, last))
    loss_id = int(cursor.fetchone()[0])
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
        cursor.execute("SELECT extract(epoch FROM window_start)::bigint, "
                       "extract(epoch FROM window_end)::bigint, repaired_at IS NOT NULL "
                       "FROM agg.redis_losses WHERE loss_id = %s", (loss_id,))
        row = cursor.fetchone()
        if row is None or row[2]:
            return Repaired(loss_id, 0, 0)
        first, last = int(row[0]), int(row[1])
        # One index probe per minute rather than a scan of the window's rows.
        cursor.execute("""
            SELECT extract(epoch FROM g)::bigint FROM generate_series(
                to_timestamp(%s), to_timestamp(%s), interval '1 minute') AS g
            WHERE EXISTS (SELECT 1 FROM raw.ad_clicks WHERE minute = g)
            ORDER BY g
        """, (first, last))
        minutes = [int(r[0]) for r in cursor.fetchall()]
    for minute in minutes:
        replay.rebuild_from_raw(engine, raw, counts, minute, shard_count)
    with transaction(engine) as cursor:
        # After every rebuild: a minute claimed before its rebuild is marked here.
        cursor.execute("""
            INSERT INTO agg.late_minutes AS l (minute, late_clicks)
            SELECT c.minute, 0 FROM agg.minute_closes c
            WHERE c.minute = ANY(SELECT to_timestamp(m) FROM unnest(%s::bigint[]) AS m)
            ON CONFLICT (minute) DO UPDATE
            SET mark_seq = nextval('agg.late_mark_seq'), last_marked_at = now()
            RETURNING 1
        """, (minutes,))
        reaggregated = len(cursor.fetchall())
        # In-flight attempts may wait on chord counters Redis no longer has.
        cursor.execute("""
            UPDATE agg.minute_closes SET requested_at = now() - make_interval(secs => %s)
            WHERE started_revision > coalesce(published_revision, 0)
        """, (retry_seconds,))
        cursor.execute("""
            UPDATE agg.redis_losses SET repaired_at = now(), minutes_rebuilt = %s,
                   minutes_reaggregated = %s
            WHERE loss_id = %s
        """, (len(minutes), reaggregated, loss_id))
    log.warning("Redis loss %s repaired: %d minutes rebuilt from raw, %d re-aggregated",
                loss_id, len(minutes), reaggregated)
    return Repaired(loss_id, len(minutes), reaggregated)
