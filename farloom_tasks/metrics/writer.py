"""Prometheus metrics of the aggregated writer.

They live in their own registry so that a process holding other Farloom
metrics (ingest, Celery) never collides with these names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

REGISTRY = CollectorRegistry()

MESSAGES_WRITTEN = Counter(
    "farloom_writer_messages_written_total",
    "Aggregates messages (parts) committed to agg.*", registry=REGISTRY)
REVISIONS_FINALISED = Counter(
    "farloom_writer_revisions_finalised_total",
    "Minute revisions whose last part was committed and became the minute's result",
    registry=REGISTRY)
STALE_SKIPPED = Counter(
    "farloom_writer_stale_parts_skipped_total",
    "Parts skipped because the minute already held that revision or a newer one",
    registry=REGISTRY)
DEAD_LETTERS = Counter(
    "farloom_writer_dead_letters_total",
    "Aggregates messages dead-lettered, by reason code", ["code"], registry=REGISTRY)
TRANSIENT_ERRORS = Counter(
    "farloom_writer_transient_errors_total",
    "PostgreSQL or RabbitMQ failures that were retried", ["service"], registry=REGISTRY)
WRITE_SECONDS = Histogram(
    "farloom_writer_write_seconds",
    "Duration of one part's PostgreSQL transaction (s)", registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
PUBLISH_TO_COMMIT_SECONDS = Histogram(
    "farloom_writer_publish_to_commit_seconds",
    "From a part's publish (x-farloom-published-at) to its commit (s)", registry=REGISTRY,
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))


def serve(port: int) -> None:
    """Serve /metrics on ``port`` from a daemon thread; 0 means metrics are off."""
    if port > 0:
        start_http_server(port, registry=REGISTRY)
