"""Prometheus metrics of the aggregated writer.

They live in the ``writer`` role's own registry (``metrics.registry``) so that a
process holding other Farloom metrics (ingest, Celery) never collides with
these names.
"""

from __future__ import annotations

from farloom_tasks.metrics.registry import RoleMetrics

WRITER = RoleMetrics("writer")
REGISTRY = WRITER.registry
serve = WRITER.serve

MESSAGES_WRITTEN = WRITER.counter(
    "farloom_writer_messages_written_total",
    "Aggregates messages (parts) committed to agg.*")
REVISIONS_FINALISED = WRITER.counter(
    "farloom_writer_revisions_finalised_total",
    "Minute revisions whose last part was committed and became the minute's result")
STALE_SKIPPED = WRITER.counter(
    "farloom_writer_stale_parts_skipped_total",
    "Parts skipped because the minute already held that revision or a newer one")
DEAD_LETTERS = WRITER.counter(
    "farloom_writer_dead_letters_total",
    "Aggregates messages dead-lettered, by reason code", ["code"])
TRANSIENT_ERRORS = WRITER.transient_errors(
    "PostgreSQL or RabbitMQ failures that were retried")
WRITE_SECONDS = WRITER.histogram(
    "farloom_writer_write_seconds",
    "Duration of one part's PostgreSQL transaction (s)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
PUBLISH_TO_COMMIT_SECONDS = WRITER.histogram(
    "farloom_writer_publish_to_commit_seconds",
    "From a part's publish (x-farloom-published-at) to its commit (s)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
