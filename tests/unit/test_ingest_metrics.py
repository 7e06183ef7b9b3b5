"""The burst summary's figures: latency quantiles (constant memory, small error), peak RSS."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from farloom_tasks.metrics import ingest as metrics
from farloom_tasks.metrics.histograms import BatchHistogram, LatencyHistogram
from farloom_tasks.metrics.ingest import IngestStats


def test_quantiles_are_within_a_few_percent_of_the_exact_ones() -> None:
    rng = random.Random(4)
    samples = [rng.lognormvariate(-2, 1.5) for _ in range(20_000)]
    histogram = LatencyHistogram()
    for sample in samples:
        histogram.observe(sample)
    ordered = sorted(samples)
    for q in (0.5, 0.9, 0.99):
        exact = ordered[int(q * len(ordered)) - 1]
        assert histogram.quantile(q) == pytest.approx(exact, rel=0.04)


def test_memory_does_not_grow_with_the_number_of_samples() -> None:
    histogram = LatencyHistogram()
    buckets = len(histogram._counts)
    for i in range(100_000):
        histogram.observe(i * 0.001)
    assert len(histogram._counts) == buckets
    assert histogram.count == 100_000


def test_out_of_range_and_negative_latencies_are_clamped_not_lost() -> None:
    histogram = LatencyHistogram()
    for value in (-0.5, 0.0, 1e-9, 10 * LatencyHistogram.LARGEST):
        histogram.observe(value)
    assert histogram.count == 4
    assert histogram.quantile(1.0) == 10 * LatencyHistogram.LARGEST
    assert histogram.quantile(0.25) == LatencyHistogram.SMALLEST  # "at most 0.1 ms"


def test_an_empty_run_summarises_to_zeros_and_no_latency() -> None:
    summary = IngestStats(started_at=100.0).summary(now=101.0)
    assert summary["clicks_per_s"] == 0.0
    assert summary["latency_p50_s"] is None and summary["latency_p99_s"] is None
    assert summary["run_s"] == 1.0


def test_throughput_is_clicks_over_the_span_from_first_delivery_to_last_ack() -> None:
    stats = IngestStats(started_at=0.0, clicks_received=5000, first_delivery_at=10.0,
                        last_ack_at=12.0)
    assert stats.summary(now=20.0)["clicks_per_s"] == 2500.0


def test_peak_rss_is_the_workers_own_not_its_parents() -> None:
    # Linux carries getrusage's ru_maxrss over an exec: a worker started by a
    # benchmark harness holding 300 MB would have reported those 300 MB as its own.
    ballast = bytearray(300 * 2**20)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page, so it is resident
    child = subprocess.run(
        [sys.executable, "-c", "from farloom_tasks.metrics.ingest import peak_rss_mb; "
                               "print(peak_rss_mb())"],
        capture_output=True, text=True, check=True)
    assert 1 < float(child.stdout) < 150
    del ballast


latencies = st.lists(st.floats(min_value=-10.0, max_value=10 * LatencyHistogram.LARGEST,
                               allow_nan=False), max_size=300)


@given(latencies)
def test_a_sorted_batch_counts_exactly_as_one_observation_each(values: list[float]) -> None:
    one_by_one, batched = LatencyHistogram(), LatencyHistogram()
    for value in values:
        one_by_one.observe(value)
    batched.observe_sorted(sorted(values))
    assert batched._counts == one_by_one._counts
    assert (batched.count, batched.maximum) == (one_by_one.count, one_by_one.maximum)


@given(st.lists(st.floats(min_value=-1.0, max_value=100.0, allow_nan=False), max_size=200))
def test_the_batch_histogram_exposes_what_prometheus_own_histogram_would(
        values: list[float]) -> None:
    buckets = (0.01, 0.1, 1, 2.5, 60)
    ours_registry, theirs_registry = CollectorRegistry(), CollectorRegistry()
    ours = BatchHistogram("latency_seconds", "doc", buckets, ours_registry)
    theirs = Histogram("latency_seconds", "doc", buckets=buckets, registry=theirs_registry)
    ours.observe_sorted(sorted(values))
    for value in values:
        theirs.observe(value)

    def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
        return {(s.name, s.labels.get("le", "")): s.value
                for family in registry.collect() for s in family.samples
                if not s.name.endswith("_created")}

    ours_samples, theirs_samples = samples(ours_registry), samples(theirs_registry)
    assert ours_samples.keys() == theirs_samples.keys()
    for key, value in theirs_samples.items():
        assert ours_samples[key] == pytest.approx(value), key


def test_a_batch_of_latencies_reaches_the_summary_and_the_metrics_endpoint() -> None:
    stats = IngestStats(started_at=0.0)
    before = metrics.REGISTRY.get_sample_value(
        "farloom_ingest_publish_to_durable_seconds_count") or 0.0
    metrics.observe_latencies(stats, acked=100.0, published_at=[99.9, 99.5, 99.0])
    assert stats.latency.count == 3
    assert stats.latency.maximum == pytest.approx(1.0)
    assert metrics.REGISTRY.get_sample_value(
        "farloom_ingest_publish_to_durable_seconds_count") == before + 3
    assert metrics.REGISTRY.get_sample_value(
        "farloom_ingest_publish_to_durable_seconds_bucket", {"le": "0.1"}) is not None
