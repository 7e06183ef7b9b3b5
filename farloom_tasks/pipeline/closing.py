"""Closing minutes: the watermark, the attempts ledger and the late marks.

The statements live in ``stores/close_ledger.py``; this module decides which
run together in one transaction (the caller's cursor) and in what order.

A tick (``tasks.close_due_minutes``) runs these steps, each its own transaction:
1. ``advance_watermark``: under the *exclusive* watermark lock (ingest holds it
   shared for each batch, so no ingest transaction straddles the change) move
   ``agg.watermark.closed_through`` to the newest due minute and record every
   newly due minute in ``agg.minute_closes``. Clicks for those minutes that
   commit later are marked late by ingest.
2. ``claim_attempts``: pick the minutes that need an aggregation, oldest first
   (never closed, or marked late, and not already being aggregated), give each
   a fresh revision from ``agg.revision_seq`` and note the late mark seen.
3. The caller drains the Redis outbox (every committed click is then counted in
   Redis) and starts one chord per attempt.
4. ``record_published``, called by ``merge_minute`` once the broker confirmed
   the revision, marks the minute closed and clears its late mark, but only if
   no new late click re-marked it since step 2 (its ``mark_seq`` is unchanged).

Ordering the late-mark read (2) before the drain (3) is what makes a late click
either part of this revision or the cause of another one: never neither.
A minute counts as closed only when ``published_revision`` is set; an attempt
that neither publishes nor fails visibly within ``close_retry_seconds`` (its
tick died between claim and chord start, say) is simply claimed again.
"""

from __future__ import annotations

from typing import Any

from farloom_tasks.core import windows
from farloom_tasks.core.attempts import Attempt
from farloom_tasks.stores import close_ledger


def advance_watermark(cursor: Any, now: float, grace_seconds: float) -> list[int]:
    """Close every due minute for ingest; returns the newly due minutes, oldest first.

    The caller checked ``due_minutes`` without the lock first, so a quiet tick
    never makes ingest wait; here the decision is re-made under the lock.
    """
    close_ledger.lock_watermark(cursor)
    closed_through = close_ledger.read_watermark(cursor)
    due = windows.due_minutes(closed_through, now, grace_seconds)
    if not due:
        return []
    if closed_through is None:
        # A fresh install closes from the last due minute on, not from 1970; clicks
        # that arrived before that (ingest ran before beat, a historical import) are
        # marked late instead, so they are aggregated and nothing is left behind.
        close_ledger.mark_clicks_before_late(cursor, due[0])
    close_ledger.move_watermark(cursor, due[0], due[-1])
    return due


def close_due_now(cursor: Any, now: float, grace_seconds: float) -> int | None:
    """Close every due minute as a tick would, and return the watermark after it.

    For a replay of minutes whose deadline passed while beat was not running
    (a fresh install, a historical import): the same rule as the tick, so a
    minute is never replayed before ingest treats its clicks as late.
    """
    closed_through = close_ledger.read_watermark(cursor)
    if windows.due_minutes(closed_through, now, grace_seconds):
        advance_watermark(cursor, now, grace_seconds)
        closed_through = close_ledger.read_watermark(cursor)
    return closed_through


def claim_attempts(cursor: Any, *, retry_seconds: float, max_in_flight: int,
                   late_interval_seconds: float = 0.0) -> list[Attempt]:
    """Claim the minutes that need aggregating now, oldest first (see module docstring).

    A minute closed before and marked late again is claimed only when its last
    attempt started at least ``late_interval_seconds`` ago: a minute that keeps
    receiving late clicks is then recomputed at that pace rather than on every
    tick, and each revision still includes every click marked before it.
    Returns nothing when another tick holds the claim lock.
    """
    if not close_ledger.try_claim_lock(cursor):
        return []
    close_ledger.adopt_late_minutes(cursor)
    room = max_in_flight - close_ledger.count_in_flight(
        cursor, retry_seconds=retry_seconds, late_interval_seconds=late_interval_seconds)
    if room <= 0:
        return []
    claimable = close_ledger.lock_claimable(cursor, retry_seconds=retry_seconds,
                                            late_interval_seconds=late_interval_seconds,
                                            limit=room)
    return [Attempt(minute, close_ledger.claim_revision(cursor, minute), mark_seq)
            for minute, mark_seq in claimable]


def record_published(cursor: Any, attempt: Attempt) -> None:
    """The broker confirmed ``attempt``'s every part: the minute is closed."""
    close_ledger.record_published(cursor, attempt.minute, attempt.revision, attempt.mark_seq)
