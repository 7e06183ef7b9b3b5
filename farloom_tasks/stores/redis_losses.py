"""Redis data losses as PostgreSQL remembers them (adapter): the epochs and the losses.

``agg.redis_epochs`` holds each shard's Redis data epoch last seen;
``agg.redis_losses`` one row per loss, with the minutes to rebuild, the
repair's lease (``repair_started_at``) and its outcome, and
``agg.redis_loss_shards`` the shards it took (a loss without shard rows was
recorded before per-shard epochs, migration 0009, and took every shard).
Every function runs in the caller's transaction (its cursor);
``pipeline/redis_loss.py`` says which go together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LossToRepair:
    first: int  # first minute of the affected window
    last: int  # last minute
    shards: tuple[int, ...]  # the shards it took; () = every shard (recorded before 0009)


def known_epochs(cursor: Any) -> dict[int, str]:
    cursor.execute("SELECT shard, epoch FROM agg.redis_epochs")
    return {int(shard): str(epoch) for shard, epoch in cursor.fetchall()}


def remember_first_epochs(cursor: Any, epochs: Mapping[int, str]) -> tuple[int, ...]:
    """Record the epoch of each shard that has none yet; the shards this call recorded."""
    if not epochs:
        return ()
    cursor.execute("INSERT INTO agg.redis_epochs (shard, epoch) "
                   "SELECT * FROM unnest(%s::smallint[], %s::text[]) ORDER BY 1 "
                   "ON CONFLICT (shard) DO NOTHING RETURNING shard",
                   (list(epochs), list(epochs.values())))
    return tuple(sorted(int(row[0]) for row in cursor.fetchall()))


def lock_known_epochs(cursor: Any, shards: Sequence[int]) -> dict[int, str]:
    """The known epochs of ``shards``, their rows locked (in shard order) until the
    transaction ends."""
    cursor.execute("SELECT shard, epoch FROM agg.redis_epochs WHERE shard = ANY(%s::smallint[]) "
                   "ORDER BY shard FOR UPDATE", (list(shards),))
    return {int(shard): str(epoch) for shard, epoch in cursor.fetchall()}


def record_loss(cursor: Any, *, epochs: Mapping[int, tuple[str, str]], first: int,
                last: int) -> int:
    """Remember each lost shard's new epoch and record the loss of minutes [first, last]
    for them (``epochs``: {shard: (old, new)}); its loss id."""
    shards = sorted(epochs)
    old = [epochs[s][0] for s in shards]
    new = [epochs[s][1] for s in shards]
    cursor.execute("""
        UPDATE agg.redis_epochs e SET epoch = x.epoch, seen_at = now()
        FROM unnest(%s::smallint[], %s::text[]) AS x(shard, epoch) WHERE e.shard = x.shard
    """, (shards, new))
    cursor.execute("""
        INSERT INTO agg.redis_losses (window_start, window_end)
        VALUES (to_timestamp(%s), to_timestamp(%s)) RETURNING loss_id
    """, (first, last))
    loss_id = int(cursor.fetchone()[0])
    cursor.execute("""
        INSERT INTO agg.redis_loss_shards (loss_id, shard, old_epoch, new_epoch)
        SELECT %s, * FROM unnest(%s::smallint[], %s::text[], %s::text[])
    """, (loss_id, shards, old, new))
    return loss_id


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


def unrepaired(cursor: Any, loss_id: int) -> LossToRepair | None:
    """What loss ``loss_id`` took, or None if it is unknown or repaired already."""
    cursor.execute("""
            SELECT extract(epoch FROM l.window_start)::bigint,
                   extract(epoch FROM l.window_end)::bigint, l.repaired_at IS NOT NULL,
                   coalesce(array_agg(s.shard ORDER BY s.shard)
                            FILTER (WHERE s.shard IS NOT NULL), '{}')
            FROM agg.redis_losses l LEFT JOIN agg.redis_loss_shards s USING (loss_id)
            WHERE l.loss_id = %s GROUP BY l.loss_id
        """, (loss_id,))
    row = cursor.fetchone()
    if row is None or row[2]:
        return None
    return LossToRepair(first=int(row[0]), last=int(row[1]),
                        shards=tuple(int(s) for s in row[3]))


def record_repaired(cursor: Any, loss_id: int, *, minutes_rebuilt: int,
                    minutes_reaggregated: int, shard_minutes: Mapping[int, int]) -> None:
    """The repair's outcome: minutes rebuilt (in all), re-aggregated, and per lost shard
    (``shard_minutes``) the minutes in which it had raw clicks."""
    cursor.execute("""
            UPDATE agg.redis_losses SET repaired_at = now(), minutes_rebuilt = %s,
                   minutes_reaggregated = %s
            WHERE loss_id = %s
        """, (minutes_rebuilt, minutes_reaggregated, loss_id))
    cursor.execute("""
            UPDATE agg.redis_loss_shards s SET minutes_rebuilt = x.minutes
            FROM unnest(%s::smallint[], %s::integer[]) AS x(shard, minutes)
            WHERE s.loss_id = %s AND s.shard = x.shard
        """, (list(shard_minutes), list(shard_minutes.values()), loss_id))


def unrepaired_shards(cursor: Any) -> list[int]:
    """Every shard an unrepaired loss took, ascending (a loss recorded before 0009 names
    none; ``count_unrepaired`` still counts it)."""
    cursor.execute("""
            SELECT DISTINCT s.shard FROM agg.redis_losses l
            JOIN agg.redis_loss_shards s USING (loss_id)
            WHERE l.repaired_at IS NULL ORDER BY 1
        """)
    return [int(row[0]) for row in cursor.fetchall()]
