"""Pipeline health: what `farloom status`, GET /v1/status and the dashboard report.

``collect`` is the adapter: it asks PostgreSQL, RabbitMQ, Redis and (when the
Celery app exists) the Celery workers, and records any that cannot be reached
instead of raising. ``assess`` is pure: handed a snapshot, the time and the
previous dead-letter count, it lists what is wrong. A snapshot with no
problems is healthy.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from farloom_tasks.core.windows import MINUTE, iso
from farloom_tasks.errors import FarloomError
from farloom_tasks.stores import redis_counts, topology

QUEUES = (topology.INGEST_QUEUE, topology.AGGREGATES_QUEUE, topology.DEAD_QUEUE,
          topology.AGGREGATES_DEAD_QUEUE)
DEAD_QUEUES = (topology.DEAD_QUEUE, topology.AGGREGATES_DEAD_QUEUE)
CELERY_APP_MODULES = ("farloom_tasks.celery", "farloom_tasks.celery_app")

_PROGRESS_SQL = sa.text("""
    SELECT (SELECT max(minute) FROM agg.minute_closes WHERE published_revision IS NOT NULL),
           (SELECT max(minute) FROM agg.minute_totals),
           (SELECT count(*) FROM agg.late_minutes),
           (SELECT closed_through FROM agg.watermark WHERE id = 1),
           (SELECT count(*) FROM agg.redis_losses),
           (SELECT count(*) FROM agg.redis_losses WHERE repaired_at IS NULL)
""")


@dataclass
class Snapshot:
    """What the services said at ``checked_at`` (epoch seconds). None = not known."""

    checked_at: float
    unreachable: dict[str, str] = field(default_factory=dict)  # service -> error
    queues: dict[str, int] = field(default_factory=dict)  # queue -> messages ready
    closed_minute: int | None = None  # newest minute whose result the broker confirmed
    written_minute: int | None = None  # newest minute with a row in agg.minute_totals
    watermark: int | None = None  # agg.watermark.closed_through
    late_minutes_pending: int | None = None
    celery_workers: list[str] | None = None  # None: no Celery app, or not asked
    redis_used_memory_bytes: int | None = None
    redis_losses: int | None = None  # times Redis lost its data (redis_loss.py), ever
    redis_losses_unrepaired: int | None = None  # losses whose minutes are still being rebuilt

    @property
    def dead_letters(self) -> int | None:
        if any(q not in self.queues for q in DEAD_QUEUES):
            return None
        return sum(self.queues[q] for q in DEAD_QUEUES)


@dataclass(frozen=True)
class Assessment:
    healthy: bool
    problems: list[str]
    lag_seconds: float | None  # how long ago the last closed minute ended


def assess(snapshot: Snapshot, *, now: float, max_lag_seconds: float,
           previous_dead_letters: int | None) -> Assessment:
    """List what is wrong. Pure: ``now`` and the previous dead count are passed in."""
    problems = [f"{name} is unreachable: {error}"
                for name, error in sorted(snapshot.unreachable.items())]
    lag: float | None = None
    if snapshot.closed_minute is not None:
        lag = max(0.0, now - (snapshot.closed_minute + MINUTE))
        if lag > max_lag_seconds:
            problems.append(f"the last closed minute ({iso(snapshot.closed_minute)}) ended "
                            f"{lag:.0f} s ago, more than the {max_lag_seconds:.0f} s allowed")
    elif "postgresql" not in snapshot.unreachable:
        problems.append("no minute has been closed yet")
    dead = snapshot.dead_letters
    if dead is not None and previous_dead_letters is not None and dead > previous_dead_letters:
        problems.append(f"dead letters are growing: {previous_dead_letters} -> {dead}")
    if snapshot.redis_losses_unrepaired:
        problems.append("Redis lost its data: aggregation is paused until the recent "
                        "minutes are rebuilt from raw (agg.redis_losses)")
    if snapshot.celery_workers is not None and not snapshot.celery_workers:
        problems.append("no Celery worker answered the ping")
    return Assessment(healthy=not problems, problems=problems, lag_seconds=lag)


def report(snapshot: Snapshot, assessment: Assessment) -> dict[str, Any]:
    """The JSON document of `farloom status --json` and GET /v1/status."""
    doc = asdict(snapshot)
    for name in ("closed_minute", "written_minute", "watermark"):
        value = doc[name]
        doc[name] = iso(value) if value is not None else None
    doc["dead_letters"] = snapshot.dead_letters
    doc["lag_seconds"] = (round(assessment.lag_seconds, 1)
                          if assessment.lag_seconds is not None else None)
    doc["healthy"] = assessment.healthy
    doc["problems"] = assessment.problems
    return doc


def collect(*, engine: sa.Engine, amqp_url: str, redis_url: str, now: float,
            ask_celery: bool, celery_timeout_seconds: float = 1.0) -> Snapshot:
    """Ask every service; an unreachable one is recorded, never raised."""
    snapshot = Snapshot(checked_at=now)
    try:
        with engine.connect() as conn:
            row = conn.execute(_PROGRESS_SQL).one()
        snapshot.closed_minute = _epoch(row[0])
        snapshot.written_minute = _epoch(row[1])
        snapshot.late_minutes_pending = int(row[2])
        snapshot.watermark = _epoch(row[3])
        snapshot.redis_losses, snapshot.redis_losses_unrepaired = int(row[4]), int(row[5])
    except sa.exc.SQLAlchemyError as exc:
        snapshot.unreachable["postgresql"] = _first_line(exc)
    try:
        connection = topology.connect(amqp_url)
        try:
            with topology.translated_errors():
                channel = connection.channel()
            # Every program declares the whole topology first (topology.py), so a
            # status check on a fresh broker reports empty queues, not errors.
            topology.declare(channel)
            for queue in QUEUES:
                snapshot.queues[queue] = topology.queue_depth(channel, queue)
        finally:
            with contextlib.suppress(Exception):
                connection.close()
    except FarloomError as exc:
        snapshot.queues.clear()
        snapshot.unreachable["rabbitmq"] = _first_line(exc)
    try:
        client = redis_counts.connect(redis_url)
        with redis_counts.translated_errors():
            info: Any = client.info("memory")
        snapshot.redis_used_memory_bytes = int(info["used_memory"])
    except FarloomError as exc:
        snapshot.unreachable["redis"] = _first_line(exc)
    if ask_celery:
        snapshot.celery_workers = celery_workers(celery_timeout_seconds)
    return snapshot


def celery_workers(timeout_seconds: float) -> list[str] | None:
    """Hostnames of the Celery workers that answer a ping; None when there is no app."""
    app = _celery_app()
    if app is None:
        return None
    try:
        replies = app.control.ping(timeout=timeout_seconds) or []
    except Exception:  # any broker failure means nobody answered
        return []
    return sorted(name for reply in replies for name in reply)


def _celery_app() -> Any | None:
    # Imported lazily: the Celery app lives in another module that may not exist
    # in every deployment (the API container does not need it).
    for module_name in CELERY_APP_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        app = getattr(module, "app", None) or getattr(module, "celery_app", None)
        if app is not None:
            return app
    return None


def _epoch(value: Any) -> int | None:
    return None if value is None else int(value.timestamp())


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
