"""Closing minutes: the watermark, the attempts ledger and the late marks.

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

from dataclasses import dataclass
from typing import Any

from farloom_tasks.core import windows
from farloom_tasks.stores.db import WATERMARK_LOCK_KEY

# Serialises the claim step of concurrent ticks (two beats, a slow tick): the
# loser skips its turn rather than starting the same minutes twice.
CLAIM_LOCK_KEY = WATERMARK_LOCK_KEY + 1


@dataclass(frozen=True, slots=True)
class Attempt:
    """One aggregation of one minute as revision ``revision``."""

    minute: int  # epoch seconds
    revision: int
    mark_seq: int | None = None  # the late mark this attempt answers, if any

    def to_json(self) -> dict[str, int | None]:
        return {"minute": self.minute, "revision": self.revision, "mark_seq": self.mark_seq}


def redis_is_complete(minute: int, now: float, max_clock_skew_seconds: float,
                      retention_seconds: float, margin_seconds: float = 120.0) -> bool:
    """Whether none of ``minute``'s Redis keys can have expired yet.

    Every write to a minute's keys happens at or after ``minute - skew`` (a
    click may be dated at most ``skew`` into the future) and pushes their
    expiry to at least write time + retention. Past that horizon some shard
    may have lost its keys while another still has them, and reading Redis
    would silently publish a partial minute, so such minutes go back to raw.
    """
    return now < minute - max_clock_skew_seconds + retention_seconds - margin_seconds


def read_watermark(cursor: Any) -> int | None:
    cursor.execute("SELECT extract(epoch FROM closed_through)::bigint FROM agg.watermark "
                   "WHERE id = 1")
    row = cursor.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def advance_watermark(cursor: Any, now: float, grace_seconds: float) -> list[int]:
    """Close every due minute for ingest; returns the newly due minutes, oldest first.

    The caller checked ``due_minutes`` without the lock first, so a quiet tick
    never makes ingest wait; here the decision is re-made under the lock.
    """
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (WATERMARK_LOCK_KEY,))
    closed_through = read_watermark(cursor)
    due = windows.due_minutes(closed_through, now, grace_seconds)
    if not due:
        return []
    if closed_through is None:
        # A fresh install closes from the last due minute on, not from 1970; clicks
        # that arrived before that (ingest ran before beat, a historical import) are
        # marked late instead, so they are aggregated and nothing is left behind.
        cursor.execute("""
            INSERT INTO agg.late_minutes (minute, late_clicks)
            SELECT minute, count(*) FROM raw.ad_clicks WHERE minute < to_timestamp(%s)
            GROUP BY minute
            ON CONFLICT (minute) DO NOTHING
        """, (due[0],))
    cursor.execute("UPDATE agg.watermark SET closed_through = to_timestamp(%s), "
                   "updated_at = now() WHERE id = 1", (due[-1],))
    cursor.execute(
        "INSERT INTO agg.minute_closes (minute) "
        "SELECT generate_series(to_timestamp(%s), to_timestamp(%s), interval '1 minute') "
        "ON CONFLICT (minute) DO NOTHING", (due[0], due[-1]))
    return due


_IN_FLIGHT = """
    c.started_revision IS NOT NULL
    AND c.started_revision > coalesce(c.published_revision, 0)
    AND c.requested_at > now() - make_interval(secs => %(retry)s)
"""


def claim_attempts(cursor: Any, *, retry_seconds: float, max_in_flight: int,
                   late_interval_seconds: float = 0.0) -> list[Attempt]:
    """Claim the minutes that need aggregating now, oldest first (see module docstring).

    A minute closed before and marked late again is claimed only when its last
    attempt started at least ``late_interval_seconds`` ago: a minute that keeps
    receiving late clicks is then recomputed at that pace rather than on every
    tick, and each revision still includes every click marked before it.
    Returns nothing when another tick holds the claim lock.
    """
    cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", (CLAIM_LOCK_KEY,))
    if not cursor.fetchone()[0]:
        return []
    # Late minutes closed before this ledger existed (historical imports) get a row too.
    cursor.execute("INSERT INTO agg.minute_closes (minute) SELECT minute FROM agg.late_minutes "
                   "ON CONFLICT (minute) DO NOTHING")
    params = {"retry": retry_seconds, "late": late_interval_seconds}
    cursor.execute(f"SELECT count(*) FROM agg.minute_closes c WHERE {_IN_FLIGHT}", params)
    room = max_in_flight - int(cursor.fetchone()[0])
    if room <= 0:
        return []
    cursor.execute(f"""
        SELECT extract(epoch FROM c.minute)::bigint, l.mark_seq
        FROM agg.minute_closes c LEFT JOIN agg.late_minutes l USING (minute)
        WHERE (c.published_revision IS NULL
               OR (l.minute IS NOT NULL
                   AND c.requested_at <= now() - make_interval(secs => %(late)s)))
          AND NOT ({_IN_FLIGHT})
        ORDER BY c.minute LIMIT %(room)s
        FOR UPDATE OF c
    """, {**params, "room": room})
    return [Attempt(minute, claim_revision(cursor, minute), mark_seq)
            for minute, mark_seq in cursor.fetchall()]


def claim_revision(cursor: Any, minute: int) -> int:
    """A fresh revision for ``minute``, recorded as its newest attempt."""
    cursor.execute("SELECT nextval('agg.revision_seq')")
    revision = int(cursor.fetchone()[0])
    cursor.execute("""
        INSERT INTO agg.minute_closes AS c (minute, attempts, started_revision, requested_at)
        VALUES (to_timestamp(%(m)s), 1, %(r)s, now())
        ON CONFLICT (minute) DO UPDATE
        SET attempts = c.attempts + 1, started_revision = %(r)s, requested_at = now()
    """, {"m": minute, "r": revision})
    return revision


def record_published(cursor: Any, attempt: Attempt) -> None:
    """The broker confirmed ``attempt``'s every part: the minute is closed."""
    cursor.execute("""
        UPDATE agg.minute_closes
        SET published_revision = greatest(coalesce(published_revision, 0), %(r)s),
            published_at = now()
        WHERE minute = to_timestamp(%(m)s)
    """, {"m": attempt.minute, "r": attempt.revision})
    if attempt.mark_seq is not None:
        cursor.execute("DELETE FROM agg.late_minutes WHERE minute = to_timestamp(%s) "
                       "AND mark_seq = %s", (attempt.minute, attempt.mark_seq))


def already_published(cursor: Any, minute: int, revision: int) -> bool:
    """Whether ``revision`` (or a newer one) of ``minute`` is published: a duplicate merge."""
    cursor.execute("SELECT published_revision >= %s FROM agg.minute_closes "
                   "WHERE minute = to_timestamp(%s)", (revision, minute))
    row = cursor.fetchone()
    return bool(row and row[0])


def record_failed(cursor: Any, minute: int, revision: int, retry_seconds: float) -> None:
    """``revision`` of ``minute`` failed for good: let a tick retry it soon.

    Soon means 5 s per attempt so far (at most ``retry_seconds``), so a minute
    that keeps failing does not spin. Only if it is still the newest attempt;
    a newer one is left alone.
    """
    cursor.execute("""
        UPDATE agg.minute_closes
        SET requested_at = now() - make_interval(secs => %(retry)s)
                           + make_interval(secs => least(%(retry)s, 5 * attempts))
        WHERE minute = to_timestamp(%(m)s) AND started_revision = %(r)s
    """, {"m": minute, "r": revision, "retry": retry_seconds})
