"""Histograms fed a sorted batch of values at a time, for Prometheus and for run summaries.

The ingest worker observes one publish→durable latency per stamped message;
counting a batch at a time (``bucket_runs``) costs a bisection per bucket
touched instead of one ``observe`` per message, which kept that observation off
the worker's per-message budget (measured in docs/benchmarks.md, "Why the
ingest code is as it is").
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


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
