"""Pipeline health: what `farloom status`, GET /v1/status and the dashboard report.

``collect`` is the adapter's orchestration: it asks PostgreSQL, RabbitMQ and
Redis (``stores/health_probes.py``) and, when the Celery app exists, the
Celery workers, and records any that cannot be reached instead of raising.
It also counts the rejected clicks of the last REJECTIONS_WINDOW_MINUTES per
reason and minute, from the rejected-click ledger (stores/rejected_clicks.py):
the exact count, which the dead-letter queue's depth is not.
``core/health.assess`` is pure: handed a snapshot, the time and the previous
dead-letter count, it lists what is wrong. A snapshot with no problems is
healthy.
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass, field
from typing import Any

from farloom_tasks.core.health import Assessment
from farloom_tasks.core.windows import iso
from farloom_tasks.errors import FarloomError
from farloom_tasks.stores import health_probes, rejected_clicks, topology
from farloom_tasks.stores.db import Engine

QUEUES = (topology.INGEST_QUEUE, topology.AGGREGATES_QUEUE, topology.DEAD_QUEUE,
          topology.AGGREGATES_DEAD_QUEUE)
DEAD_QUEUES = (topology.DEAD_QUEUE, topology.AGGREGATES_DEAD_QUEUE)
CELERY_APP_MODULES = ("farloom_tasks.celery", "farloom_tasks.celery_app")
REJECTIONS_WINDOW_MINUTES = 60  # minutes of rejected clicks status reports


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
    redis_used_memory_bytes: int | None = None  # on a Redis Cluster, summed over its masters
    redis_losses: int | None = None  # times Redis lost its data (redis_loss.py), ever
    redis_losses_unrepaired: int | None = None  # losses whose minutes are still being rebuilt
    redis_last_loss_shards: list[int] | None = None  # the shards the latest loss took
    # (minute, reason code, rejected elements) over the last REJECTIONS_WINDOW_MINUTES
    rejected: list[tuple[int, str, int]] | None = None

    @property
    def dead_letters(self) -> int | None:
        if any(q not in self.queues for q in DEAD_QUEUES):
            return None
        return sum(self.queues[q] for q in DEAD_QUEUES)


def report(snapshot: Snapshot, assessment: Assessment) -> dict[str, Any]:
    """The JSON document of `farloom status --json` and GET /v1/status."""
    doc = asdict(snapshot)
    for name in ("closed_minute", "written_minute", "watermark"):
        value = doc[name]
        doc[name] = iso(value) if value is not None else None
    doc["dead_letters"] = snapshot.dead_letters
    doc["rejected_clicks"] = _rejections(doc.pop("rejected"))
    doc["lag_seconds"] = (round(assessment.lag_seconds, 1)
                          if assessment.lag_seconds is not None else None)
    doc["healthy"] = assessment.healthy
    doc["problems"] = assessment.problems
    return doc


def collect(*, engine: Engine, amqp_url: str, redis_url: str, now: float,
            ask_celery: bool, celery_timeout_seconds: float = 1.0,
            redis_cluster: bool = False) -> Snapshot:
    """Ask every service; an unreachable one is recorded, never raised."""
    snapshot = Snapshot(checked_at=now)
    try:
        progress = health_probes.progress(engine)
        snapshot.closed_minute = progress.closed_minute
        snapshot.written_minute = progress.written_minute
        snapshot.late_minutes_pending = progress.late_minutes_pending
        snapshot.watermark = progress.watermark
        snapshot.redis_losses = progress.redis_losses
        snapshot.redis_losses_unrepaired = progress.redis_losses_unrepaired
        snapshot.redis_last_loss_shards = progress.redis_last_loss_shards
    except FarloomError as exc:
        snapshot.unreachable["postgresql"] = _first_line(exc)
    else:
        try:
            snapshot.rejected = rejected_clicks.per_minute_since(
                engine, now - REJECTIONS_WINDOW_MINUTES * 60)
        except FarloomError as exc:
            snapshot.unreachable["postgresql"] = _first_line(exc)
    try:
        snapshot.queues = health_probes.queue_depths(amqp_url, QUEUES)
    except FarloomError as exc:
        snapshot.queues.clear()
        snapshot.unreachable["rabbitmq"] = _first_line(exc)
    try:
        snapshot.redis_used_memory_bytes = health_probes.redis_used_memory(redis_url,
                                                                         cluster=redis_cluster)
    except FarloomError as exc:
        snapshot.unreachable["redis"] = _first_line(exc)
    if ask_celery:
        snapshot.celery_workers = celery_workers(celery_timeout_seconds)
    return snapshot


def _rejections(rows: list[tuple[int, str, int]] | None) -> dict[str, Any] | None:
    """The report's rejected clicks: per reason over the window, and per minute."""
    if rows is None:
        return None
    per_reason: dict[str, int] = {}
    per_minute: dict[int, dict[str, int]] = {}
    for minute, code, count in rows:
        per_reason[code] = per_reason.get(code, 0) + count
        per_minute.setdefault(minute, {})[code] = count
    return {"window_minutes": REJECTIONS_WINDOW_MINUTES, "total": sum(per_reason.values()),
            "per_reason": dict(sorted(per_reason.items())),
            "per_minute": [{"minute": iso(minute), "per_reason": reasons}
                           for minute, reasons in sorted(per_minute.items())]}


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


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
