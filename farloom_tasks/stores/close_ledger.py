"""The close ledger (adapter): the watermark, ``agg.minute_closes`` and the late marks.

Every function takes the caller's cursor and runs its statements in the
caller's transaction: which statements share a transaction, and in what
order, is decided by ``pipeline/closing.py`` (and replay, Redis loss), whose
docstrings say why. ``agg.watermark.closed_through`` is the newest minute
closed for ingest; ``agg.minute_closes`` holds one row per minute with its
attempts, its newest started revision and its published revision;
``agg.late_minutes`` holds the minutes that received clicks after they closed.
``uncommitted_minutes`` asks ``agg.minute_totals`` whether a claimed revision
has been written yet (``farloom replay --wait``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from farloom_tasks.stores.db import WATERMARK_LOCK_KEY

# Serialises the claim step of concurrent ticks (two beats, a slow tick): the
# loser skips its turn rather than starting the same minutes twice.
CLAIM_LOCK_KEY = WATERMARK_LOCK_KEY + 1

# An attempt is in flight while its revision is newer than the published one
# and it started less than ``retry`` seconds ago.
_IN_FLIGHT = """
    c.started_revision IS NOT NULL
    AND c.started_revision > coalesce(c.published_revision, 0)
    AND c.requested_at > now() - make_interval(secs => %(retry)s)
"""


def lock_watermark(cursor: Any) -> None:
    """Take the watermark lock exclusively until the transaction ends.

    Ingest holds it shared for each batch transaction, so no batch straddles
    what the holder does (a watermark move, a rebuild of a minute's sets).
    """
    cursor.execute("SELECT pg_advisory_xact_lock(%s)", (WATERMARK_LOCK_KEY,))


def read_watermark(cursor: Any) -> int | None:
    cursor.execute("SELECT extract(epoch FROM closed_through)::bigint FROM agg.watermark "
                   "WHERE id = 1")
    row = cursor.fetchone()
    return None if row is None or row[0] is None else int(row[0])


def mark_clicks_before_late(cursor: Any, minute: int) -> None:
    """Mark late every minute before ``minute`` that has raw clicks (a fresh install)."""
    cursor.execute("""
            INSERT INTO agg.late_minutes (minute, late_clicks)
            SELECT minute, count(*) FROM raw.ad_clicks WHERE minute < to_timestamp(%s)
            GROUP BY minute
            ON CONFLICT (minute) DO NOTHING
        """, (minute,))


def move_watermark(cursor: Any, first_due: int, last_due: int) -> None:
    """Close [first_due, last_due] for ingest and give each minute its ledger row."""
    cursor.execute("UPDATE agg.watermark SET closed_through = to_timestamp(%s), "
                   "updated_at = now() WHERE id = 1", (last_due,))
    cursor.execute(
        "INSERT INTO agg.minute_closes (minute) "
        "SELECT generate_series(to_timestamp(%s), to_timestamp(%s), interval '1 minute') "
        "ON CONFLICT (minute) DO NOTHING", (first_due, last_due))


def try_claim_lock(cursor: Any) -> bool:
    """Take the claim lock until the transaction ends; False if another tick holds it."""
    cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", (CLAIM_LOCK_KEY,))
    return bool(cursor.fetchone()[0])


def adopt_late_minutes(cursor: Any) -> None:
    """Give a ledger row to late minutes closed before the ledger existed (old imports)."""
    cursor.execute("INSERT INTO agg.minute_closes (minute) SELECT minute FROM agg.late_minutes "
                   "ON CONFLICT (minute) DO NOTHING")


def count_in_flight(cursor: Any, *, retry_seconds: float, late_interval_seconds: float) -> int:
    params = {"retry": retry_seconds, "late": late_interval_seconds}
    cursor.execute(f"SELECT count(*) FROM agg.minute_closes c WHERE {_IN_FLIGHT}", params)
    return int(cursor.fetchone()[0])


def lock_claimable(cursor: Any, *, retry_seconds: float, late_interval_seconds: float,
                   limit: int) -> list[tuple[int, int | None]]:
    """(minute, late mark seq or None) of the minutes to aggregate now, oldest first, locked.

    Never closed, or marked late with the last attempt ``late_interval_seconds``
    ago or more; and in either case not in flight.
    """
    params = {"retry": retry_seconds, "late": late_interval_seconds}
    cursor.execute(f"""
        SELECT extract(epoch FROM c.minute)::bigint, l.mark_seq
        FROM agg.minute_closes c LEFT JOIN agg.late_minutes l USING (minute)
        WHERE (c.published_revision IS NULL
               OR (l.minute IS NOT NULL
                   AND c.requested_at <= now() - make_interval(secs => %(late)s)))
          AND NOT ({_IN_FLIGHT})
        ORDER BY c.minute LIMIT %(room)s
        FOR UPDATE OF c
    """, {**params, "room": limit})
    return [(int(minute), mark_seq) for minute, mark_seq in cursor.fetchall()]


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


def record_published(cursor: Any, minute: int, revision: int, mark_seq: int | None) -> None:
    """``revision`` of ``minute`` is published; clear the late mark it answered, if
    no late click re-marked the minute since (its ``mark_seq`` is unchanged)."""
    cursor.execute("""
        UPDATE agg.minute_closes
        SET published_revision = greatest(coalesce(published_revision, 0), %(r)s),
            published_at = now()
        WHERE minute = to_timestamp(%(m)s)
    """, {"m": minute, "r": revision})
    if mark_seq is not None:
        cursor.execute("DELETE FROM agg.late_minutes WHERE minute = to_timestamp(%s) "
                       "AND mark_seq = %s", (minute, mark_seq))


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


def mark_closed_minutes_late(cursor: Any, minutes: Sequence[int]) -> int:
    """Give each of ``minutes`` that the closer started on a fresh late mark; how many.

    A fresh mark (a new ``mark_seq``) means no attempt in flight can clear it.
    """
    cursor.execute("""
            INSERT INTO agg.late_minutes AS l (minute, late_clicks)
            SELECT c.minute, 0 FROM agg.minute_closes c
            WHERE c.minute = ANY(SELECT to_timestamp(m) FROM unnest(%s::bigint[]) AS m)
            ON CONFLICT (minute) DO UPDATE
            SET mark_seq = nextval('agg.late_mark_seq'), last_marked_at = now()
            RETURNING 1
        """, (list(minutes),))
    return len(cursor.fetchall())


def make_in_flight_retryable(cursor: Any, retry_seconds: float,
                             minutes: Sequence[int] | None = None) -> None:
    """Let a tick claim every attempt in flight (of ``minutes``; None = of any minute)
    now rather than after ``retry_seconds``."""
    cursor.execute("""
            UPDATE agg.minute_closes SET requested_at = now() - make_interval(secs => %s)
            WHERE started_revision > coalesce(published_revision, 0)
              AND (%s::bigint[] IS NULL
                   OR minute = ANY(SELECT to_timestamp(m) FROM unnest(%s::bigint[]) AS m))
        """, (retry_seconds, None if minutes is None else list(minutes),
              None if minutes is None else list(minutes)))


def uncommitted_minutes(cursor: Any, revisions: dict[int, int]) -> list[int]:
    """The minutes of ``{minute: revision}`` whose revision is not in agg.minute_totals yet."""
    cursor.execute("""
            SELECT extract(epoch FROM w.minute)::bigint
            FROM unnest(%s::bigint[], %s::bigint[]) AS x(m, r)
            CROSS JOIN LATERAL (SELECT to_timestamp(x.m) AS minute) AS w
            LEFT JOIN agg.minute_totals t ON t.minute = w.minute
            WHERE t.revision IS NULL OR t.revision < x.r
        """, (list(revisions), list(revisions.values())))
    return [int(row[0]) for row in cursor.fetchall()]
