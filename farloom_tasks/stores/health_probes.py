"""What each service says about the pipeline's health (adapter), for ``pipeline/status.py``.

Each probe asks one service and raises a FarloomError (DatabaseUnavailable,
BrokerUnavailable, RedisUnavailable) if it cannot be reached; the caller
records which could not be reached.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from farloom_tasks.errors import DatabaseUnavailable
from farloom_tasks.stores import redis_client, topology

_PROGRESS_SQL = sa.text("""
    SELECT (SELECT max(minute) FROM agg.minute_closes WHERE published_revision IS NOT NULL),
           (SELECT max(minute) FROM agg.minute_totals),
           (SELECT count(*) FROM agg.late_minutes),
           (SELECT closed_through FROM agg.watermark WHERE id = 1),
           (SELECT count(*) FROM agg.redis_losses),
           (SELECT count(*) FROM agg.redis_losses WHERE repaired_at IS NULL),
           (SELECT array_agg(shard ORDER BY shard) FROM agg.redis_loss_shards
            WHERE loss_id = (SELECT max(loss_id) FROM agg.redis_losses))
""")


@dataclass(frozen=True)
class Progress:
    """How far closing and writing got, read in one statement (one snapshot)."""

    closed_minute: int | None  # newest minute whose result the broker confirmed
    written_minute: int | None  # newest minute with a row in agg.minute_totals
    late_minutes_pending: int
    watermark: int | None  # agg.watermark.closed_through
    redis_losses: int
    redis_losses_unrepaired: int
    redis_last_loss_shards: list[int]  # the shards the latest loss took (stores/redis_losses.py)


def progress(engine: sa.Engine) -> Progress:
    """Raises DatabaseUnavailable on any SQLAlchemy error, with the driver's message
    (a missing database or table is reported, not only a lost connection)."""
    try:
        with engine.connect() as conn:
            row = conn.execute(_PROGRESS_SQL).one()
    except sa.exc.SQLAlchemyError as exc:
        text = str(getattr(exc, "orig", None) or exc).strip()
        raise DatabaseUnavailable(text or type(exc).__name__) from exc
    return Progress(closed_minute=_epoch(row[0]), written_minute=_epoch(row[1]),
                    late_minutes_pending=int(row[2]), watermark=_epoch(row[3]),
                    redis_losses=int(row[4]), redis_losses_unrepaired=int(row[5]),
                    redis_last_loss_shards=[int(s) for s in row[6] or ()])


def queue_depths(amqp_url: str, queues: Sequence[str]) -> dict[str, int]:
    """Messages ready in each of ``queues``."""
    connection = topology.connect(amqp_url)
    try:
        # Passive: a fresh broker reports empty queues, whatever FARLOOM_QUEUE_TYPE says.
        return topology.ready_counts(connection, queues)
    finally:
        with contextlib.suppress(Exception):
            connection.close()


def redis_used_memory(redis_url: str, *, cluster: bool = False) -> int:
    """Bytes of memory Redis uses (INFO memory); on a Redis Cluster, the sum over its masters."""
    client = redis_client.connect_url(redis_url, cluster=cluster)
    try:
        per_server = redis_client.server_info(client, "memory")
    finally:
        client.close()
    return sum(int(info["used_memory"]) for info in per_server.values())


def _epoch(value: Any) -> int | None:
    return None if value is None else int(value.timestamp())
