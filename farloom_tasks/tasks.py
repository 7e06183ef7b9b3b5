"""The Celery tasks: thin wrappers over closing, minute_aggregation, replay, reconcile
and retention.

Arguments are small JSON values: minutes as epoch seconds (``replay_*`` and
``reconcile`` also take the text ``windows.parse_minute`` reads). Every task
is safe to run twice; see each plain module for why.

Failure rules: I/O errors (TransientError) are retried with exponential
backoff. A shard task that still fails fails its chord; the chord's error
callback ``aggregation_failed`` then lets the next tick retry the minute with
a new revision. Anything that goes unnoticed (a worker lost mid-chord) is
retried by the tick once the attempt is older than ``close_retry_seconds``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import chord

from farloom_tasks.celery import app, settings_of
from farloom_tasks.core import windows
from farloom_tasks.core.aggregates import encode
from farloom_tasks.core.attempts import Attempt
from farloom_tasks.core.dimensions import parse_dimensions
from farloom_tasks.core.minute_merge import ShardSummary
from farloom_tasks.core.redis_horizon import redis_is_complete
from farloom_tasks.core.replay_source import choose_source
from farloom_tasks.core.windows import MINUTE, iso, minute_of, parse_minute
from farloom_tasks.errors import TransientError
from farloom_tasks.pipeline import (
    closing,
    minute_aggregation,
    redis_loss,
    replay,
    retention,
    slice_aggregation,
    slice_rollup_builds,
)
from farloom_tasks.pipeline import reconcile as reconciliation
from farloom_tasks.pipeline.durable_write import drain_outbox
from farloom_tasks.stores import close_ledger
from farloom_tasks.stores import slices as slice_store
from farloom_tasks.stores.aggregates_publisher import publish_with_one_reconnect
from farloom_tasks.stores.transactions import transaction
from farloom_tasks.task_resources import TaskResources, current

log = logging.getLogger(__name__)

REPLAY_CHUNK_MINUTES = 30  # minutes one replay_minutes task recomputes

RETRYING: dict[str, Any] = {
    "autoretry_for": (TransientError,),
    "retry_backoff": 1,  # s, doubled per retry
    "retry_backoff_max": 30,  # s
    "retry_jitter": True,
    "max_retries": 3,
}


def _resources() -> TaskResources:
    return current(settings_of(app))


def _minute(value: int | str) -> int:
    return minute_of(value) if isinstance(value, int) else parse_minute(value)


def _prepare_replay(res: TaskResources, minute: int | str, source: str) -> tuple[Attempt, str]:
    """replay.prepare for one minute, the same for replay_minute and replay_minutes."""
    settings = res.settings
    return replay.prepare(
        res.engine, res.raw, res.counts, minute=_minute(minute), source=source,
        shard_count=settings.shard_count, now=time.time(),
        max_clock_skew_seconds=settings.max_clock_skew_seconds,
        grace_seconds=settings.grace_seconds)


def start_aggregation(attempt: Attempt) -> None:
    """Start the chord of shard tasks and the merge for one claimed attempt, then its
    slices (after the chord, so the minute's top k is never queued behind them)."""
    _start_chord(attempt)
    aggregate_slices.delay(attempt.minute, attempt.revision)


def _start_chord(attempt: Attempt) -> None:
    settings = settings_of(app)
    body = merge_minute.s(attempt.minute, attempt.revision, attempt.mark_seq)
    body.link_error(aggregation_failed.s(attempt.minute, attempt.revision))
    chord(topk_shard.s(attempt.minute, shard, settings.top_k, attempt.revision)
          for shard in range(settings.shard_count))(body)


@app.task(name="farloom.aggregate_slices", soft_time_limit=600, time_limit=660, **RETRYING)
def aggregate_slices(minute: int, revision: int) -> dict[str, object]:
    """Compute ``minute``'s slices from raw as ``revision`` (slice_aggregation.py).

    Every path that claims a revision starts it, with that revision; an older
    or repeated one changes nothing.
    """
    res = _resources()
    settings = res.settings
    written = slice_aggregation.aggregate(
        res.engine, parse_dimensions(settings.dimensions), minute=minute, revision=revision,
        partition_hours=settings.minute_partition_hours,
        work_mem_mb=settings.slice_work_mem_mb)
    if slice_rollup_builds.is_trigger_minute(minute):
        # The hour's last minute is sliced: its hour (and day) can be rolled up now.
        roll_up_slices.delay(minute)
    return written.to_json()


def _slice_names(res: TaskResources) -> list[str]:
    return slice_store.slice_names(parse_dimensions(res.settings.dimensions))


@app.task(name="farloom.roll_up_slices", soft_time_limit=3600, time_limit=3660, **RETRYING)
def roll_up_slices(minute: int) -> dict[str, object]:
    """Build the slice rollups of ``minute``'s hour, and its day after the day's last
    hour, once each can be (slice_rollup_builds.py); a built period is skipped."""
    res = _resources()
    return slice_rollup_builds.after_minute(res.engine, _slice_names(res),
                                            minute_of(minute)).to_json()


@app.task(name="farloom.sweep_slice_rollups", soft_time_limit=3600, time_limit=3660,
          **RETRYING)
def sweep_slice_rollups() -> dict[str, object]:
    """Build the oldest closed hours and days whose slice rollups are not built yet
    (a missed trigger, a restart), a few a run (slice_rollup_builds.sweep)."""
    res = _resources()
    return slice_rollup_builds.sweep(res.engine, _slice_names(res)).to_json()


@app.task(name="farloom.close_due_minutes", **RETRYING)
def close_due_minutes() -> list[dict[str, int | None]]:
    """One beat tick: close due minutes, re-aggregate late ones (closing.py)."""
    res = _resources()
    settings, now = res.settings, time.time()
    with transaction(res.engine) as cursor:
        closed_through = close_ledger.read_watermark(cursor)
    if windows.due_minutes(closed_through, now, settings.grace_seconds):
        with transaction(res.engine) as cursor:
            due = closing.advance_watermark(cursor, now, settings.grace_seconds)
        if due:
            log.info("closed %s..%s for ingest", iso(due[0]), iso(due[-1]))
    # After advancing (which needs only PostgreSQL), before claiming: a minute is
    # never claimed by a tick that has not checked Redis still holds its data.
    losses = redis_loss.check(res.engine, res.counts, shard_count=settings.shard_count, now=now,
                              retention_seconds=settings.redis_retention_seconds,
                              max_clock_skew_seconds=settings.max_clock_skew_seconds,
                              lease_seconds=settings.close_retry_seconds)
    for loss_id in losses.start_repair:
        repair_redis_loss.delay(loss_id)
    if losses.repair_pending:
        # A shard lost its data: nothing is aggregated until raw has rebuilt it.
        return []
    with transaction(res.engine) as cursor:
        attempts = closing.claim_attempts(cursor, retry_seconds=settings.close_retry_seconds,
                                          late_interval_seconds=settings.late_interval_seconds,
                                          max_in_flight=settings.close_max_in_flight)
    if not attempts:
        return []
    started = 0
    try:
        res.failpoint("close_due_minutes", "claimed")
        drain_outbox(res.raw, res.counts)
        for attempt in attempts:
            if not redis_is_complete(attempt.minute, now, settings.max_clock_skew_seconds,
                                     settings.redis_retention_seconds):
                replay.rebuild_from_raw(res.engine, res.raw, res.counts, attempt.minute,
                                        settings.shard_count)
            _start_chord(attempt)
            started += 1
            # A slice task lost here is found by reconciliation (a published revision
            # without its slices); the attempt itself is under way and not handed back.
            aggregate_slices.delay(attempt.minute, attempt.revision)
    except Exception:
        # Claimed but never started: hand them back so a tick soon retries them,
        # rather than after close_retry_seconds.
        with transaction(res.engine) as cursor:
            for attempt in attempts[started:]:
                close_ledger.record_failed(cursor, attempt.minute, attempt.revision,
                                           settings.close_retry_seconds)
        raise
    return [attempt.to_json() for attempt in attempts]


@app.task(name="farloom.repair_redis_loss", soft_time_limit=600, time_limit=660, **RETRYING)
def repair_redis_loss(loss_id: int) -> dict[str, int]:
    """Rebuild from raw the lost shards of every minute a Redis data loss affected
    (redis_loss.py)."""
    res = _resources()
    settings = res.settings
    done = redis_loss.repair(res.engine, res.raw, res.counts, loss_id=loss_id,
                             shard_count=settings.shard_count,
                             retry_seconds=settings.close_retry_seconds)
    return {"loss_id": done.loss_id, "minutes_rebuilt": done.minutes_rebuilt,
            "minutes_reaggregated": done.minutes_reaggregated}


@app.task(name="farloom.topk_shard", **RETRYING)
def topk_shard(minute: int, shard: int, k: int, revision: int) -> dict[str, Any]:
    """One shard's top k, clicks and distinct ads of ``minute`` for ``revision``."""
    res = _resources()
    res.failpoint("topk_shard", f"{minute}.{shard}")
    summary = minute_aggregation.snapshot_shard(res.redis, minute=minute, shard=shard,
                                                revision=revision, k=k)
    return summary.to_json()


@app.task(name="farloom.merge_minute", soft_time_limit=600, time_limit=660, **RETRYING)
def merge_minute(shard_results: list[dict[str, Any]], minute: int, revision: int,
                 mark_seq: int | None = None) -> dict[str, int]:
    """Merge, publish every part with confirms, then record the minute as closed.

    The record happens only after the broker confirmed every part, so a crash
    in between leaves the minute unpublished and the tick retries it.
    """
    res = _resources()
    with transaction(res.engine) as cursor:
        if close_ledger.already_published(cursor, minute, revision):
            return {"minute": minute, "revision": revision, "parts": 0}
    summaries = [ShardSummary.from_json(doc) for doc in shard_results]
    parts = _publish_result(res, Attempt(minute, revision, mark_seq), summaries)
    return {"minute": minute, "revision": revision, "parts": parts}


def _publish_result(res: TaskResources, attempt: Attempt,
                    summaries: list[ShardSummary]) -> int:
    """Publish every part with confirms, then record the attempt as published."""
    settings = res.settings
    minute, revision = attempt.minute, attempt.revision
    computed_at = time.time()

    def bodies() -> Any:
        return (encode(part) for part in minute_aggregation.result_parts(
            res.redis, minute=minute, revision=revision, computed_at=computed_at,
            k=settings.top_k, chunk_ads=settings.aggregate_chunk_ads,
            shard_count=settings.shard_count, summaries=summaries))

    parts = publish_with_one_reconnect(res.publisher, bodies)
    with transaction(res.engine) as cursor:
        closing.record_published(cursor, attempt)
    minute_aggregation.drop_snapshots(res.redis, minute, revision, settings.shard_count)
    return parts


@app.task(name="farloom.aggregation_failed", **RETRYING)
def aggregation_failed(request: Any, exc: Any, traceback: Any, minute: int,
                       revision: int) -> None:
    """Error callback of a chord: let a tick retry ``minute`` soon (close_ledger.record_failed)."""
    log.warning("aggregation of %s revision %s failed: %r", iso(minute), revision, exc)
    res = _resources()
    with transaction(res.engine) as cursor:
        close_ledger.record_failed(cursor, minute, revision, res.settings.close_retry_seconds)


@app.task(name="farloom.replay_minute", **RETRYING)
def replay_minute(minute: int | str, source: str = "auto") -> dict[str, Any]:
    """Recompute one closed minute as a new revision (replay.py). Returns its revision."""
    attempt, chosen = _prepare_replay(_resources(), minute, source)
    start_aggregation(attempt)
    return {"minute": attempt.minute, "revision": attempt.revision, "source": chosen}


@app.task(name="farloom.replay_minutes", soft_time_limit=600, time_limit=660, **RETRYING)
def replay_minutes(minutes: list[int | str], source: str = "auto") -> dict[str, int]:
    """Replay several closed minutes inside this one task; returns {minute: revision}.

    Each minute goes through the same steps as ``replay_minute`` and its chord
    (replay.prepare, a snapshot of every shard, the merge and the confirmed
    publish), only without the fan-out. Why: a range replay (a day is 1,440
    minutes) through chords costs ten Celery round trips per minute while the
    work per historical minute is small; chunks keep it fast and still spread
    across workers. A retried chunk replays its minutes again as newer
    revisions with the same numbers.
    """
    res = _resources()
    settings = res.settings
    revisions: dict[str, int] = {}
    for value in minutes:
        attempt, _ = _prepare_replay(res, value, source)
        summaries = [minute_aggregation.snapshot_shard(
            res.redis, minute=attempt.minute, shard=shard, revision=attempt.revision,
            k=settings.top_k) for shard in range(settings.shard_count)]
        _publish_result(res, attempt, summaries)
        aggregate_slices.delay(attempt.minute, attempt.revision)
        revisions[str(attempt.minute)] = attempt.revision
    return revisions


def replay_chunks(first: int, last: int) -> list[list[int]]:
    """[first, last] split into the minute lists of ``replay_minutes`` tasks."""
    minutes = list(range(first, last + 1, MINUTE))
    return [minutes[i:i + REPLAY_CHUNK_MINUTES]
            for i in range(0, len(minutes), REPLAY_CHUNK_MINUTES)]


@app.task(name="farloom.replay_range", **RETRYING)
def replay_range(start: int | str, end: int | str, source: str = "auto") -> int:
    """Replay every minute of [start, end] in chunks (``replay_minutes``); returns how many."""
    first, last = _minute(start), _minute(end)
    choose_source(source, present_in_redis=False, redis_complete=False)  # validate
    chunks = replay_chunks(first, last)
    for chunk in chunks:
        replay_minutes.delay(chunk, source)
    return sum(len(chunk) for chunk in chunks)


def _recompute_slices(res: TaskResources, minute: int) -> None:
    """Reconciliation's fix of a minute's slices: at once, in this task, at a fresh revision."""
    settings = res.settings
    slice_aggregation.recompute(res.engine, parse_dimensions(settings.dimensions), minute=minute,
                                partition_hours=settings.minute_partition_hours,
                                work_mem_mb=settings.slice_work_mem_mb)


@app.task(name="farloom.reconcile", soft_time_limit=600, time_limit=660, **RETRYING)
def reconcile(start: int | str, end: int | str, trigger: str = "task") -> dict[str, Any]:
    """Compare raw with agg over [start, end] and replay every differing minute from raw."""
    res = _resources()
    summary = reconciliation.reconcile(
        res.engine, start=_minute(start), end=_minute(end), trigger=trigger,
        retry_seconds=res.settings.close_retry_seconds,
        replay=lambda minute: replay_minute.delay(minute, "raw") and None,
        slices=parse_dimensions(res.settings.dimensions),
        recompute_slices=lambda minute: _recompute_slices(res, minute))
    return {"run_id": summary.run_id, "minutes_checked": summary.minutes_checked,
            "minutes_differing": len(summary.findings), "minutes_fixed": summary.minutes_fixed,
            "rollups_checked": summary.rollups_checked,
            "rollups_differing": len(summary.rollup_findings),
            "rollups_fixed": summary.rollups_fixed,
            "slices_differing": len(summary.slice_findings), "slices_fixed": summary.slices_fixed,
            "slice_rollups_checked": summary.slice_rollups_checked,
            "slice_rollups_differing": len(summary.slice_rollup_findings),
            "slice_rollups_fixed": summary.slice_rollups_fixed}


@app.task(name="farloom.maintain_partitions", soft_time_limit=3600, time_limit=3660,
          **RETRYING)
def maintain_partitions() -> dict[str, Any]:
    """Make partitions ahead, then apply raw and minute retention (pipeline/retention.py).

    Safe to run twice at once: making a partition is idempotent and the drops
    take one advisory lock (the second run skips them).
    """
    res = _resources()
    report = retention.maintain(res.engine, res.settings, time.time())
    if report.dropped:
        log.info("retention dropped %d partitions: %s", len(report.dropped),
                 ", ".join(report.dropped))
    return report.to_json()


@app.task(name="farloom.reconcile_recent", **RETRYING)
def reconcile_recent() -> dict[str, Any] | None:
    """The periodic reconciliation: the last ``reconcile_lookback_minutes`` closed minutes."""
    res = _resources()
    with transaction(res.engine) as cursor:
        closed_through = close_ledger.read_watermark(cursor)
    if closed_through is None:
        return None
    start = closed_through - (res.settings.reconcile_lookback_minutes - 1) * MINUTE
    result: dict[str, Any] = reconcile(start, closed_through, "periodic")
    return result
