"""Metrics of the ingest worker: Prometheus series, and the run summary of ``--burst``.

The Prometheus series live in their own registry (the aggregated writer has
``writer_metrics``), and are updated once per batch, never per message, except
for the publish→durable latency, which is one histogram observation per
stamped message, counted a batch at a time (``observe_latencies``): one
Prometheus ``observe`` per message cost the worker's main thread about 1 us of
the 20 us it spends per one-click message. The run summary keeps latencies in
fixed log-spaced buckets, so its memory does not grow with the stream.
"""

from __future__ import annotations

import bisect
import math
import resource
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

REGISTRY = CollectorRegistry()

MESSAGES = Counter("farloom_ingest_messages_total",
                   "Click messages acked (stored or dead-lettered)", registry=REGISTRY)
CLICKS_STORED = Counter("farloom_ingest_clicks_stored_total",
                        "Clicks newly stored in raw.ad_clicks and counted in Redis",
                        registry=REGISTRY)
DUPLICATES = Counter("farloom_ingest_duplicates_total",
                     "Valid clicks whose click_id was already stored or already in the batch",
                     registry=REGISTRY)
DEAD_LETTERS = Counter("farloom_ingest_dead_letters_total",
                       "Invalid elements or messages dead-lettered, by reason code", ["code"],
                       registry=REGISTRY)
LATE_CLICKS = Counter("farloom_ingest_late_clicks_total",
                      "Clicks stored for a minute that was already closed", registry=REGISTRY)
TRANSIENT_ERRORS = Counter("farloom_ingest_transient_errors_total",
                           "PostgreSQL, Redis or RabbitMQ failures that were retried",
                           ["service"], registry=REGISTRY)
BATCH_CLICKS = Histogram("farloom_ingest_batch_clicks", "Distinct clicks per durable write",
                         registry=REGISTRY,
                         buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000))
FLUSH_SECONDS = Histogram("farloom_ingest_flush_seconds",
                          "From a flush's start to its ack: write, dead letters, ack (s)",
                          registry=REGISTRY,
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


def bucket_runs(bounds: Sequence[float], ordered: Sequence[float]) -> Iterator[tuple[int, int]]:
    """(bucket index, how many) for sorted values; bucket i holds bounds[i-1] < v <= bounds[i].

    Index len(bounds) is the overflow bucket. One pair per bucket touched, so a
    batch of 2,000 latencies that spans 30 buckets costs 60 bisections, not 2,000.
    """
    start, end = 0, len(ordered)
    while start < end:
        index = bisect.bisect_left(bounds, ordered[start])
        stop = end if index == len(bounds) else bisect.bisect_right(ordered, bounds[index],
                                                                     start)
        yield index, stop - start
        start = stop


class BatchHistogram(Collector):
    """A Prometheus histogram fed a sorted batch of values at a time (thread-safe)."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float],
                 registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = tuple(float(b) for b in buckets)
        self._counts = [0] * (len(self.bounds) + 1)  # per bucket; the last is +Inf
        self._sum = 0.0
        self._lock = threading.Lock()  # /metrics is served from another thread
        registry.register(self)

    def observe_sorted(self, ordered: Sequence[float]) -> None:
        runs = list(bucket_runs(self.bounds, ordered))
        total = math.fsum(ordered)
        with self._lock:
            for index, n in runs:
                self._counts[index] += n
            self._sum += total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, n in zip((*self.bounds, math.inf), counts, strict=True):
            cumulative += n
            buckets.append((floatToGoString(bound), cumulative))  # type: ignore[no-untyped-call]
        yield HistogramMetricFamily(self.name, self.documentation, buckets=buckets,
                                    sum_value=total)


PUBLISH_TO_DURABLE_SECONDS = BatchHistogram(
    "farloom_ingest_publish_to_durable_seconds",
    "From a message's x-farloom-published-at stamp to the ack of its batch (s)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=REGISTRY)


def serve(port: int) -> None:
    """Serve /metrics on ``port`` from a daemon thread; 0 means metrics are off."""
    if port > 0:
        start_http_server(port, registry=REGISTRY)


class LatencyHistogram:
    """Quantiles of non-negative durations in constant memory (about 2% relative error)."""

    GROWTH = 1.04  # each bucket's upper bound is 4% above the previous one
    SMALLEST = 1e-4  # s; anything faster lands in the first bucket
    LARGEST = 86_400.0  # s; anything slower lands in the last bucket

    def __init__(self) -> None:
        steps = math.ceil(math.log(self.LARGEST / self.SMALLEST, self.GROWTH))
        self._bounds = [self.SMALLEST * self.GROWTH ** i for i in range(steps + 1)]
        self._counts = [0] * (len(self._bounds) + 1)
        self.count = 0
        self.maximum = 0.0

    def observe(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)  # clocks of publisher and worker may disagree slightly
        self._counts[bisect.bisect_left(self._bounds, seconds)] += 1
        self.count += 1
        self.maximum = max(self.maximum, seconds)

    def observe_sorted(self, ordered: Sequence[float]) -> None:
        """Count a batch of durations sorted in ascending order (``observe`` for each, faster)."""
        if not ordered:
            return
        for index, n in bucket_runs(self._bounds, ordered):  # a negative lands in bucket 0
            self._counts[index] += n
        self.count += len(ordered)
        self.maximum = max(self.maximum, ordered[-1], 0.0)

    def quantile(self, q: float) -> float | None:
        """The q-quantile, as the geometric middle of its bucket; None before any sample."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index, n in enumerate(self._counts):
            seen += n
            if seen >= rank:
                if index == 0:
                    return min(self.SMALLEST, self.maximum)
                if index >= len(self._bounds):
                    return self.maximum
                middle = math.sqrt(self._bounds[index - 1] * self._bounds[index])
                return min(middle, self.maximum)
        return self.maximum


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
