"""Metrics of the ingest worker: Prometheus series, and the run summary of ``--burst``.

The Prometheus series live in the ``ingest`` role's own registry
(``metrics.registry``), and are updated once per acked batch (``record_batch``),
never per message, except for the publish→durable latency, which is one
histogram observation per stamped message, counted a batch at a time
(``observe_latencies``, see ``metrics.histograms``). The run summary keeps
latencies in fixed log-spaced buckets, so its memory does not grow with the stream.
"""

from __future__ import annotations

import collections
import resource
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from farloom_tasks.core.batching import Batch
from farloom_tasks.core.messages import DeadLetter
from farloom_tasks.metrics.histograms import BatchHistogram, LatencyHistogram
from farloom_tasks.metrics.registry import RoleMetrics

INGEST = RoleMetrics("ingest")
REGISTRY = INGEST.registry
serve = INGEST.serve

MESSAGES = INGEST.counter("farloom_ingest_messages_total",
                          "Click messages acked (stored or dead-lettered)")
CLICKS_STORED = INGEST.counter("farloom_ingest_clicks_stored_total",
                               "Clicks newly stored in raw.ad_clicks and counted in Redis")
DUPLICATES = INGEST.counter(
    "farloom_ingest_duplicates_total",
    "Valid clicks whose click_id was already stored or already in the batch")
DEAD_LETTERS = INGEST.counter("farloom_ingest_dead_letters_total",
                              "Invalid elements or messages dead-lettered, by reason code",
                              ["code"])
LATE_CLICKS = INGEST.counter("farloom_ingest_late_clicks_total",
                             "Clicks stored for a minute that was already closed")
TRANSIENT_ERRORS = INGEST.transient_errors(
    "PostgreSQL, Redis or RabbitMQ failures that were retried")
BATCH_CLICKS = INGEST.histogram("farloom_ingest_batch_clicks", "Distinct clicks per durable write",
                                buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000))
FLUSH_SECONDS = INGEST.histogram(
    "farloom_ingest_flush_seconds",
    "From a flush's start to its ack: write, dead letters, ack (s)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
PUBLISH_TO_DURABLE_SECONDS = BatchHistogram(
    INGEST.name("farloom_ingest_publish_to_durable_seconds"),
    "From a message's x-farloom-published-at stamp to the ack of its batch (s)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=REGISTRY)


@dataclass
class IngestStats:
    """Totals of one worker run, printed as one JSON line by ``--burst``."""

    started_at: float  # epoch s
    messages: int = 0
    clicks_received: int = 0
    clicks_stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    late_clicks: int = 0
    first_delivery_at: float | None = None  # epoch s
    last_ack_at: float | None = None  # epoch s
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    prefetch: int = 0  # messages, the broker window last set with basic.qos
    prefetch_changes: int = 0  # resizes of the window after the first (each re-subscribes)
    batches: int = 0  # flushes written and acked

    def summary(self, now: float) -> dict[str, Any]:
        """``elapsed_s`` spans the first delivery to the last ack (idle waits excluded)."""
        if self.first_delivery_at is not None and self.last_ack_at is not None:
            elapsed = max(self.last_ack_at - self.first_delivery_at, 1e-9)
        else:
            elapsed = 0.0
        p50 = self.latency.quantile(0.5)
        p99 = self.latency.quantile(0.99)
        return {
            "messages": self.messages,
            "clicks_received": self.clicks_received,
            "clicks_stored": self.clicks_stored,
            "duplicates": self.duplicates,
            "dead_letters": self.dead_letters,
            "late_clicks": self.late_clicks,
            "elapsed_s": round(elapsed, 3),
            "clicks_per_s": round(self.clicks_received / elapsed, 1) if elapsed else 0.0,
            "latency_p50_s": None if p50 is None else round(p50, 4),
            "latency_p99_s": None if p99 is None else round(p99, 4),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "run_s": round(now - self.started_at, 3),
            "prefetch": self.prefetch,
            "prefetch_changes": self.prefetch_changes,
            "batches": self.batches,
        }


def record_batch(stats: IngestStats, batch: Batch, *, new_clicks: int, duplicates: int,
                 late_clicks: int, refused: Sequence[DeadLetter], started: float,
                 acked: float) -> None:
    """Count one acked batch in the run summary and in Prometheus.

    ``new_clicks``, ``duplicates`` and ``late_clicks`` are what the durable write
    reported; ``refused`` are the clicks the write did not store (PostgreSQL refused
    them as data, or they contradict their ad's owner), dead-lettered after the
    batch's own invalid elements.
    """
    stats.messages += batch.messages
    stats.batches += 1
    stats.clicks_received += batch.clicks_received
    stats.clicks_stored += new_clicks
    all_duplicates = batch.duplicates_in_batch + duplicates
    stats.duplicates += all_duplicates
    dead_letters = [*batch.dead_letters, *refused]
    stats.dead_letters += len(dead_letters)
    stats.late_clicks += late_clicks
    stats.last_ack_at = acked
    MESSAGES.inc(batch.messages)
    CLICKS_STORED.inc(new_clicks)
    DUPLICATES.inc(all_duplicates)
    LATE_CLICKS.inc(late_clicks)
    BATCH_CLICKS.observe(batch.distinct_clicks)
    FLUSH_SECONDS.observe(acked - started)
    for code, n in collections.Counter(d.rejection.code for d in dead_letters).items():
        DEAD_LETTERS.labels(code).inc(n)
    observe_latencies(stats, acked, batch.published_at)


def observe_latencies(stats: IngestStats, acked: float, published_at: Sequence[float]) -> None:
    """Publish-to-durable latencies of one acked batch, into the summary and Prometheus."""
    ordered = sorted(acked - stamp for stamp in published_at)
    stats.latency.observe_sorted(ordered)
    PUBLISH_TO_DURABLE_SECONDS.observe_sorted(ordered)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB.

    VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over an exec, so a
    worker started by a large parent (a benchmark harness holding its messages)
    would report the parent's memory as its own.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    # ru_maxrss is in KiB on Linux (no /proc elsewhere).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
