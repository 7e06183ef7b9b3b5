"""The Celery app: ``celery -A farloom_tasks worker`` and ``celery -A farloom_tasks beat``.

Celery's ``-A farloom_tasks`` finds this submodule (the package has no ``app``
attribute, so ``find_app`` tries ``farloom_tasks.celery``), which keeps
``import farloom_tasks`` free of Celery for the workers and the CLI.

Everything comes from Settings: the broker is RabbitMQ (``amqp_url``, every
node of a cluster) and the result backend is a plain Redis (``celery_result_url``,
else ``redis_url``), whose chord support counts header completions atomically
instead of polling with ``chord_unlock``.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from celery import Celery, signals

import beat_schedule
from farloom_tasks.errors import BrokerUnavailable
from farloom_tasks.settings import Settings
from farloom_tasks.stores import topology

TASK_QUEUE = topology.TASKS_QUEUE  # "farloom.tasks"
# A shard read is quick; merging streams every ad of a minute, so it gets more.
SOFT_TIME_LIMIT_SECONDS = 120
HARD_TIME_LIMIT_SECONDS = 150


def configure(target: Celery, settings: Settings) -> None:
    """Point ``target`` at the services named by ``settings`` (before its first use)."""
    target.conf.update(
        # kombu tries ";"-separated broker URLs in turn (failover between cluster nodes)
        broker_url=";".join(settings.amqp_urls),
        result_backend=settings.result_backend_url,
        task_default_queue=TASK_QUEUE,
        # With FARLOOM_QUEUE_TYPE=quorum the task queue is a quorum queue too (declared
        # with x-queue-type, as topology.declare checks it). Quorum queues refuse a
        # channel-wide prefetch, so Celery then uses a per-consumer one
        # (worker_detect_quorum_queues, on by default); they have no priorities,
        # which Farloom's tasks do not use, and ETA tasks use Celery's native delayed
        # delivery, which no Farloom task needs (none is sent with a countdown or an
        # ETA): its 28 queues, which Celery declares at start, are then classic, the
        # cheaper kind, rather than 28 more Raft groups.
        task_default_queue_type=settings.queue_type,
        broker_native_delayed_delivery_queue_type="classic",
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # A task is acknowledged only after it ran, and is redelivered if its
        # worker process dies: every task here is safe to run twice.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=SOFT_TIME_LIMIT_SECONDS,
        task_time_limit=HARD_TIME_LIMIT_SECONDS,
        result_expires=3600,  # s; chord bookkeeping and results are not kept longer
        result_chord_join_timeout=30,  # s
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        timezone="UTC",
        enable_utc=True,
        beat_schedule=beat_schedule.build(settings),
    )
    target.farloom_settings = settings  # type: ignore[attr-defined]


def settings_of(target: Any) -> Settings:
    found: Settings = target.farloom_settings
    return found


def make_app(settings: Settings) -> Celery:
    created = Celery("farloom_tasks", include=["farloom_tasks.tasks"])
    configure(created, settings)
    return created


@signals.worker_init.connect
@signals.beat_init.connect
def check_queues(sender: Any = None, **_: Any) -> None:
    """Stop a Celery worker or beat at start when a queue has the other type (exit 3).

    Otherwise Celery would meet RabbitMQ's PRECONDITION_FAILED on farloom.tasks
    and retry forever; the farloom commands make the same check. An unreachable
    broker is left to Celery's own retries. Celery's signal dispatch catches
    exceptions, but not SystemExit.
    """
    settings = settings_of(getattr(sender, "app", None) or app)
    try:
        connection = topology.connect(settings.amqp_url, role="celery start-up check")
    except BrokerUnavailable:
        return
    try:
        topology.declare(connection.channel(), topology.QueueType.of(settings))
    except topology.QueueMismatch as exc:
        print(f"celery: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(3) from None
    except BrokerUnavailable:
        return
    finally:
        with contextlib.suppress(Exception):
            connection.close()


app = make_app(Settings.from_env())
