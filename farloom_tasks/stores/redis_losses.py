"""Redis data losses as PostgreSQL remembers them (adapter): the epoch and the losses.

``agg.redis_epoch`` holds the Redis data epoch last seen; ``agg.redis_losses``
one row per loss, with the minutes to rebuild, the repair's lease
(``repair_started_at``) and its outcome. Every function runs in the caller's
transaction (its cursor); ``pipeline/redis_loss.py`` says which go together.
"""

from __future__ import annotations

from typing import Any


def known_epoch(cursor: Any) -> str | None:
    cursor.execute("SELECT epoch FROM agg.redis_epoch WHERE id = 1")
    row = cursor.fetchone()
    return None if row is None else str(row[0])


def remember_first_epoch(cursor: Any, epoch: str) -> bool:
    """Record ``epoch`` if none is known yet; True if this call recorded it."""
    cursor.execute("INSERT INTO agg.redis_epoch (id, epoch) VALUES (1, %s) "
                   "ON CONFLICT (id) DO NOTHING RETURNING epoch", (epoch,))
    return cursor.fetchone() is not None


def lock_known_epoch(cursor: Any) -> str:
    """The known epoch, its row locked until the transaction ends."""
    cursor.execute("SELECT epoch FROM agg.redis_epoch WHERE id = 1 FOR UPDATE")
    return str(cursor.fetchone()[0])


def record_loss(cursor: Any, *, old_epoch: str, new_epoch: str, first: int, last: int) -> int:
    """Remember ``new_epoch`` and record the loss of minutes [first, last]; its loss id."""
    cursor.execute("UPDATE agg.redis_epoch SET epoch = %s, seen_at = now() WHERE id = 1",
                   (new_epoch,))
    cursor.execute("""
        INSERT INTO agg.redis_losses (old_epoch, new_epoch, window_start, window_end)
        VALUES (%s, %s, to_timestamp(%s), to_timestamp(%s)) RETURNING loss_id
    """, (old_epoch, new_epoch, first, last))
    return int(cursor.fetchone()[0])


def count_unrepaired(cursor: Any) -> int:
    cursor.execute("SELECT count(*) FROM agg.redis_losses WHERE repaired_at IS NULL")
    return int(cursor.fetchone()[0])


def lease_repairs(cursor: Any, lease_seconds: float) -> tuple[int, ...]:
    """Lease every unrepaired loss not leased in the last ``lease_seconds``; their ids."""
    cursor.execute("""
            UPDATE agg.redis_losses SET repair_started_at = now()
            WHERE repaired_at IS NULL AND (repair_started_at IS NULL
                  OR repair_started_at < now() - make_interval(secs => %s))
            RETURNING loss_id
        """, (lease_seconds,))
    return tuple(sorted(int(r[0]) for r in cursor.fetchall()))


def unrepaired_window(cursor: Any, loss_id: int) -> tuple[int, int] | None:
    """First and last minute of the loss, or None if it is unknown or repaired already."""
    cursor.execute("SELECT extract(epoch FROM window_start)::bigint, "
                   "extract(epoch FROM window_end)::bigint, repaired_at IS NOT NULL "
                   "FROM agg.redis_losses WHERE loss_id = %s", (loss_id,))
    row = cursor.fetchone()
    if row is None or row[2]:
        return None
    return int(row[0]), int(row[1])


def record_repaired(cursor: Any, loss_id: int, *, minutes_rebuilt: int,
                    minutes_reaggregated: int) -> None:
    cursor.execute("""
            UPDATE agg.redis_losses SET repaired_at = now(), minutes_rebuilt = %s,
                   minutes_reaggregated = %s
            WHERE loss_id = %s
        """, (minutes_rebuilt, minutes_reaggregated, loss_id))
