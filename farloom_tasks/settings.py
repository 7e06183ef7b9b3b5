"""Every Farloom setting, read once from ``FARLOOM_*`` environment variables.

The defaults point at the local-development services (PostgreSQL, Redis and
RabbitMQ on 127.0.0.1 with their stock credentials). They are development
defaults only: production deployments set the URLs from their secret store.
Each field below documents its unit; the README's settings table mirrors it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from farloom_tasks.core.dimensions import parse_dimensions
from farloom_tasks.errors import ConfigError

ENV_PREFIX = "FARLOOM_"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
QUEUE_TYPES = ("classic", "quorum")


@dataclass(frozen=True)
class Settings:
    # Connections. Every component reads its URLs from these, so a whole pipeline
    # is pointed at another database, vhost and Redis db by setting them.
    database_url: str = "postgresql+psycopg2://postgres@127.0.0.1:5432/farloom_db"
    # one broker URL, or several separated by commas: the nodes of one RabbitMQ
    # cluster, tried in turn on connect and on every reconnect
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # 1 = redis_url names a seed node of a Redis Cluster (db 0 only); shards spread
    # over its masters by their hash tags
    redis_cluster: bool = False
    # Celery's result backend (chord bookkeeping): a plain Redis URL, since Celery
    # cannot use a cluster. "" = redis_url, which is refused when redis_cluster is on.
    celery_result_url: str = ""
    # Farloom's durable queues: "classic" or "quorum" (replicated over a cluster's
    # nodes). A queue's type is fixed when it is made: docs/operations.md, "Queue type".
    queue_type: str = "classic"
    # deliveries of one message a quorum queue allows before it dead-letters it
    quorum_delivery_limit: int = 20

    # Aggregation shape.
    shard_count: int = 8  # shards (Redis sorted sets per minute)
    top_k: int = 100  # ads in each minute's ranking
    grace_seconds: float = 5.0  # s after a minute's end before it is closed
    max_clock_skew_seconds: float = 300.0  # s a click may be dated in the future
    redis_retention_seconds: int = 7200  # s a per-minute Redis key lives after its last write
    # slices with their own exact counts (core/dimensions.py): dimensions and
    # "a*b" combinations, comma-separated; made at close from raw into agg.slice_values
    # (docs/design.md, "Slices by dimension"), with campaign and advertiser always.
    dimensions: str = "country,device"
    # MB of work_mem for the transaction that computes one minute's slices
    # (docs/benchmarks.md, "Where slices are made")
    slice_work_mem_mb: int = 64

    # Ingest batching.
    batch_size: int = 2000  # clicks per durable write
    flush_interval_seconds: float = 0.2  # s before a partial batch is flushed
    # unacked messages the broker may hand one ingest worker (a ceiling: the worker
    # sizes its window from the clicks per message it sees, core.prefetch.prefetch_for)
    prefetch_count: int = 12_000
    ingest_writers: int = 2  # batches one ingest worker writes concurrently (one connection each)
    max_message_bytes: int = 1_048_576  # bytes; larger messages are dead-lettered unparsed

    # Aggregates: per-ad counts travel in chunks of at most this many ads.
    aggregate_chunk_ads: int = 20_000  # ads per aggregates message
    aggregate_prefetch_count: int = 8  # unacked aggregates messages the broker may hand a writer
    # bytes; larger aggregates messages are dead-lettered unparsed (20,000 ads of 64
    # four-byte characters still fit)
    aggregate_max_message_bytes: int = 16_777_216

    # Beat.
    # s between close_due_minutes ticks: a minute is claimed at most this long after
    # its deadline, which is most of the top-100 delay budget (1 s).
    close_tick_seconds: float = 0.25
    reconcile_interval_seconds: float = 300.0  # s between periodic reconciliations
    reconcile_lookback_minutes: int = 120  # minutes the periodic reconciliation checks
    # s between two re-aggregations of one minute that keeps receiving late clicks
    late_interval_seconds: float = 1.0
    close_retry_seconds: float = 60.0  # s an unpublished aggregation may run before a retry
    close_max_in_flight: int = 32  # minutes aggregated at once; bounds a catch-up burst
    # s between sweeps that build the slice hour and day rollups not built yet (a
    # missed trigger, a restart: pipeline/slice_rollup_builds.py)
    slice_rollup_sweep_seconds: float = 60.0
    # Test seam (failpoints.py): "name[:n],..." arms points; the first n calls fail.
    failpoints: str = ""

    # Publishers (generate, watch, import).
    publish_window_messages: int = 10_000  # messages awaiting a broker confirm, per publisher
    publish_channels: int = 2  # channels per publisher connection (broker-side parallelism)
    reconnect_max_backoff_seconds: float = 30.0  # s, cap of the reconnect backoff
    watch_state_dir: str = "~/.local/state/farloom"  # directory of `farloom watch` state files

    # Storage: time partitions and retention (docs/design.md, "Partitions and retention").
    # hours of event time per raw.ad_clicks partition, a divisor of 24; it bounds the
    # dedup window (a click id is unique within its partition)
    raw_partition_hours: int = 1
    minute_partition_hours: int = 24  # hours per agg.ad_clicks_per_minute partition, divides 24
    # s beyond now + max_clock_skew_seconds for which partitions are made ahead
    partition_premake_seconds: float = 7200.0
    raw_retention_days: int = 0  # days raw partitions are kept after they end; 0 = forever
    minute_retention_days: int = 0  # days per-minute results are kept; 0 = forever
    archive_dir: str = ""  # where raw partitions are archived before a drop; "" = no archive
    maintenance_interval_seconds: float = 300.0  # s between partition/retention runs

    # Operations.
    metrics_port: int = 0  # TCP port for a worker's Prometheus metrics; 0 = off
    log_level: str = "INFO"

    # Query API and health checks (`farloom serve`, `farloom status`).
    # "" = database_url with the user swapped for the read-only role farloom_api and no
    # password: the local-development default (trust auth). Production sets a full URL.
    api_database_url: str = ""
    # 1 = the API serves every request without a key (local development only: `make run`
    # sets it; `farloom serve` warns loudly). 0 = a key (`farloom api-key`) is required.
    api_open: bool = False
    # 1 = the API serves Prometheus metrics at /metrics (to an admin key unless api_open)
    api_metrics: bool = False
    status_max_lag_seconds: float = 180.0  # s the last closed minute may trail the clock

    @property
    def amqp_urls(self) -> list[str]:
        """The broker addresses in ``amqp_url``, in the order they are tried."""
        return [url.strip() for url in self.amqp_url.split(",") if url.strip()]

    @property
    def result_backend_url(self) -> str:
        """Where Celery keeps results and chord counters: never a Redis Cluster."""
        return self.celery_result_url or self.redis_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``FARLOOM_<FIELD>`` variables, e.g. ``FARLOOM_SHARD_COUNT``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = env.get(ENV_PREFIX + field.name.upper())
            if raw is None or raw == "":
                continue
            default = field.default
            try:
                if isinstance(default, bool):
                    values[field.name] = raw.strip().lower() in {"1", "true", "yes", "on"}
                elif isinstance(default, int):
                    values[field.name] = int(raw)
                elif isinstance(default, float):
                    values[field.name] = float(raw)
                    # float() accepts "nan" and "inf"; a NaN compares false with
                    # everything, so it would slip through every range check below.
                    if not math.isfinite(values[field.name]):
                        raise ValueError(raw)
                elif field.name == "queue_type":
                    values[field.name] = raw.strip().lower()
                elif field.name == "log_level":
                    values[field.name] = raw.strip().upper()
                elif field.name in ("database_url", "api_database_url"):
                    values[field.name] = with_psycopg2_driver(raw)
                else:
                    values[field.name] = raw
            except ValueError:
                raise ConfigError(
                    f"{ENV_PREFIX}{field.name.upper()}={raw!r} is not a valid "
                    f"{type(default).__name__}"
                ) from None
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        positive = {
            "shard_count": self.shard_count,
            "top_k": self.top_k,
            "slice_work_mem_mb": self.slice_work_mem_mb,
            "batch_size": self.batch_size,
            "prefetch_count": self.prefetch_count,
            "ingest_writers": self.ingest_writers,
            "max_message_bytes": self.max_message_bytes,
            "redis_retention_seconds": self.redis_retention_seconds,
            "aggregate_chunk_ads": self.aggregate_chunk_ads,
            "aggregate_prefetch_count": self.aggregate_prefetch_count,
            "aggregate_max_message_bytes": self.aggregate_max_message_bytes,
            "flush_interval_seconds": self.flush_interval_seconds,
            "close_tick_seconds": self.close_tick_seconds,
            "close_retry_seconds": self.close_retry_seconds,
            "close_max_in_flight": self.close_max_in_flight,
            "publish_window_messages": self.publish_window_messages,
            "publish_channels": self.publish_channels,
            "reconnect_max_backoff_seconds": self.reconnect_max_backoff_seconds,
            "reconcile_interval_seconds": self.reconcile_interval_seconds,
            "slice_rollup_sweep_seconds": self.slice_rollup_sweep_seconds,
            "reconcile_lookback_minutes": self.reconcile_lookback_minutes,
            "maintenance_interval_seconds": self.maintenance_interval_seconds,
            "quorum_delivery_limit": self.quorum_delivery_limit,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be > 0, got {value}")
        for name, value in {
            "grace_seconds": self.grace_seconds,
            "max_clock_skew_seconds": self.max_clock_skew_seconds,
            "late_interval_seconds": self.late_interval_seconds,
            "partition_premake_seconds": self.partition_premake_seconds,
            "raw_retention_days": self.raw_retention_days,
            "minute_retention_days": self.minute_retention_days,
        }.items():
            if value < 0:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be >= 0, got {value}")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"FARLOOM_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, "
                              f"got {self.log_level!r}")
        for name, hours in (("raw_partition_hours", self.raw_partition_hours),
                            ("minute_partition_hours", self.minute_partition_hours)):
            # Partitions then start on the hour and tile each UTC day.
            if not 1 <= hours <= 24 or 24 % hours:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must divide 24 (1, 2, 3, 4, 6, "
                                  f"8, 12 or 24), got {hours}")
        if self.queue_type not in QUEUE_TYPES:
            raise ConfigError(f"FARLOOM_QUEUE_TYPE must be one of {', '.join(QUEUE_TYPES)}, "
                              f"got {self.queue_type!r}")
        if not self.amqp_urls:
            raise ConfigError("FARLOOM_AMQP_URL names no broker")
        if self.redis_cluster and not self.celery_result_url:
            raise ConfigError(
                "FARLOOM_CELERY_RESULT_URL is required when FARLOOM_REDIS_CLUSTER=1: Celery's "
                "result backend needs a plain (non-cluster) Redis, e.g. redis://host:6379/0"
            )
        parse_dimensions(self.dimensions)  # raises ConfigError naming the variable
        if self.shard_count > 1024:
            raise ConfigError("FARLOOM_SHARD_COUNT must be at most 1024")
        if self.redis_retention_seconds < 120 + self.grace_seconds:
            raise ConfigError(
                "FARLOOM_REDIS_RETENTION_SECONDS must outlive a minute plus its grace period"
            )


def with_psycopg2_driver(url: str) -> str:
    """``postgresql://`` and ``postgres://`` URLs as ``postgresql+psycopg2://``.

    SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, which Farloom does
    not install: the URL most people copy from elsewhere would fail with
    "No module named 'psycopg'". A URL naming its driver is left alone.
    """
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url[len(scheme):]
    return url


def describe() -> list[tuple[str, str]]:
    """(variable, default) for every setting, for ``farloom config`` and the README."""
    return [
        (ENV_PREFIX + field.name.upper(), str(field.default)) for field in fields(Settings)
    ]
