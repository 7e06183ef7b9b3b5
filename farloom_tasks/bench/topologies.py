"""``farloom bench topologies``: ingest and aggregation on one Redis or a Redis Cluster,
and on classic or quorum queues, side by side in one run.

The same measurements as ``bench ingest`` (a preloaded drain by Farloom's ingest
worker) and ``bench aggregate`` (close one minute, replay it from raw), once per
topology, interleaved round by round so that a busy moment of a shared machine
hits every topology alike; the median round counts. The single Redis with
classic queues is the baseline every other row is compared with.

The Redis Cluster is a throw-away three-master one on this machine
(``local_redis_cluster``); quorum queues are declared on the configured broker.
On one 2-core machine a cluster is not faster: the figures say what it costs.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from farloom_tasks.bench import aggregate, ingest
from farloom_tasks.bench.aggregate_workload import load, make_workload
from farloom_tasks.bench.env import describe_machine, isolated_bench_env
from farloom_tasks.bench.local_redis_cluster import LocalRedisCluster, local_redis_cluster
from farloom_tasks.bench.options import AggregateOptions, TopologiesOptions
from farloom_tasks.bench.report import machine_markdown, write_section
from farloom_tasks.bench.traffic import Traffic
from farloom_tasks.core.windows import MINUTE, minute_of
from farloom_tasks.errors import FarloomError
from farloom_tasks.settings import Settings

SECTION = "topologies"
BASELINE = "single-classic"
TOPOLOGIES = {  # name -> (Redis Cluster, queue type)
    "single-classic": (False, "classic"),
    "cluster-classic": (True, "classic"),
    "single-quorum": (False, "quorum"),
    "cluster-quorum": (True, "quorum"),
}
INGEST_CAP_SECONDS = 600.0
IDLE_SECONDS = 1.0  # s the burst-mode worker waits on an empty queue before exiting


@dataclass
class Measured:
    """One topology's figures, one entry per round."""

    ingest: dict[int, list[float]] = field(default_factory=dict)  # clicks/msg -> clicks/s
    top_delay: list[float] = field(default_factory=list)  # s after the deadline
    all_delay: list[float] = field(default_factory=list)
    replay_rate: list[float] = field(default_factory=list)  # raw clicks/s, median of replays


def topology_settings(settings: Settings, name: str,
                      cluster: LocalRedisCluster | None) -> Settings:
    """``settings`` pointed at the topology: the cluster's seed node and quorum queues.

    On a cluster, Celery's results stay on the configured plain Redis, as the
    README tells operators to do.
    """
    on_cluster, queue_type = TOPOLOGIES[name]
    changed = replace(settings, queue_type=queue_type)
    if on_cluster:
        if cluster is None:
            raise FarloomError(f"topology {name} needs the local Redis Cluster")
        changed = replace(changed, redis_cluster=True, redis_url=cluster.seed_url,
                          celery_result_url=settings.result_backend_url)
    return changed


def _measure_ingest(settings: Settings, clicks_per_message: int, messages: int,
                    click_ids: str) -> float:
    with isolated_bench_env(settings) as env:
        traffic = Traffic(clicks_per_message, time.time(), click_ids=click_ids)
        row = ingest.run_preloaded(env, "farloom", traffic, messages, INGEST_CAP_SECONDS,
                                   IDLE_SECONDS)
    if not row.complete:
        raise FarloomError(f"the ingest drain on {settings.redis_url} did not complete: "
                           f"{row.note}")
    return row.clicks_per_s


def _measure_aggregate(settings: Settings, options: AggregateOptions,
                       into: Measured) -> None:
    with isolated_bench_env(settings) as env, tempfile.TemporaryDirectory(
            prefix="farloom-bench-topologies-") as logs:
        minute = minute_of(time.time()) - MINUTE
        workload = make_workload(minute, options.clicks, options.ads, options.zipf,
                                 options.seed)
        load(env, workload, options.seed)
        figures = aggregate.measure(env, workload, options, Path(logs))
    into.top_delay.append(figures.top_delay)
    into.all_delay.append(figures.all_delay)
    into.replay_rate.append(workload.clicks / statistics.median(figures.replay_seconds))


@contextmanager
def _cluster_if_needed(names: list[str]) -> Iterator[LocalRedisCluster | None]:
    with ExitStack() as stack:
        needed = any(TOPOLOGIES[name][0] for name in names)
        yield stack.enter_context(local_redis_cluster()) if needed else None


def run(options: TopologiesOptions, settings: Settings) -> int:
    """Measure every topology in ``options.topologies``; print (and write) the table."""
    names = list(options.topologies)
    if unknown := set(names) - set(TOPOLOGIES):
        raise FarloomError(f"unknown topologies {sorted(unknown)}; choose from "
                           f"{', '.join(TOPOLOGIES)}")
    if settings.redis_cluster:
        raise FarloomError("run bench topologies against a single Redis: it starts its own "
                           "local Redis Cluster for the cluster rows")
    measured = {name: Measured() for name in names}
    aggregate_options = AggregateOptions(clicks=options.aggregate_clicks,
                                         ads=options.aggregate_ads, replays=options.replays,
                                         warmup=options.warmup)
    started = datetime.now(UTC)
    load_before = os.getloadavg()[0]
    with isolated_bench_env(settings) as env:
        machine = describe_machine(env.settings)
    with _cluster_if_needed(names) as cluster:
        steps = [(round_, name) for round_ in range(options.rounds) for name in names]
        with tqdm(steps, desc="bench topologies", unit="run", file=sys.stderr) as bar:
            for round_, name in bar:
                bar.set_postfix_str(f"round {round_ + 1} {name}")
                target = topology_settings(settings, name, cluster)
                for cpm, messages in options.ingest_messages.items():
                    rate = _measure_ingest(target, cpm, messages, options.click_ids)
                    measured[name].ingest.setdefault(cpm, []).append(rate)
                if cluster is not None:
                    cluster.flush_every_node()
                _measure_aggregate(target, aggregate_options, measured[name])
                if cluster is not None:
                    cluster.flush_every_node()
    load_after = os.getloadavg()[0]
    body = markdown(measured, options, started, (load_before, load_after))
    print(body)
    if options.write_docs:
        write_section(SECTION, "\n".join(["## Topologies: Redis Cluster and quorum queues", "",
                                          machine_markdown(machine), "", body]))
    return 0


def _ratio(value: float, baseline: float | None) -> str:
    return "" if baseline in (None, 0) else f" ({value / baseline:.2f}x)"


def markdown(measured: dict[str, Measured], options: TopologiesOptions, started: datetime,
             load_average: tuple[float, float]) -> str:
    """The comparison table: medians of the rounds, each against the baseline row."""
    base = measured.get(BASELINE)
    cpms = sorted(options.ingest_messages)
    header = ["topology"] + [f"ingest {cpm} click/msg (clicks/s)" for cpm in cpms] + [
        "top 100 after the deadline", "every per-ad count after the deadline",
        "replay from raw (raw clicks/s)"]
    lines = [
        f"Measured {started:%Y-%m-%d %H:%M} UTC with `farloom {options.command_line}`: "
        f"{options.rounds} round(s), each topology once per round, interleaved; the median "
        "round is shown, with its ratio to single-classic (throughput: higher is better; "
        "delays: lower is better). Ingest: Farloom's worker draining "
        + ", ".join(f"{n:,} preloaded messages of {cpm} click(s)"
                    for cpm, n in sorted(options.ingest_messages.items()))
        + f" (random UUIDv4 click ids, every optional field). Aggregation: one minute of "
        f"{options.aggregate_clicks:,} clicks over {options.aggregate_ads:,} ads, closed by "
        f"the real chord, then replayed from raw {options.replays} time(s). Redis Cluster: "
        "three masters on this machine, no replicas, Celery's results on the plain Redis. "
        "Quorum queues: on the configured broker (one node: no replication, so this is "
        "their bookkeeping cost only). 1-minute load average "
        f"{load_average[0]:.2f} before, {load_average[1]:.2f} after.",
        "",
        "| " + " | ".join(header) + " |",
        "|---" * len(header) + "|",
    ]
    for name, figures in measured.items():
        cells = [f"`{name}`"]
        for cpm in cpms:
            value = statistics.median(figures.ingest[cpm])
            baseline = statistics.median(base.ingest[cpm]) if base else None
            cells.append(f"{value:,.0f}{_ratio(value, baseline)}")
        for attribute, fmt in (("top_delay", "{:.3f} s"), ("all_delay", "{:.3f} s"),
                               ("replay_rate", "{:,.0f}")):
            value = statistics.median(getattr(figures, attribute))
            baseline = statistics.median(getattr(base, attribute)) if base else None
            cells.append(fmt.format(value) + _ratio(value, baseline))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Every round, in order (single runs swing on a shared machine):", ""]
    for name, figures in measured.items():
        parts = [f"ingest {cpm} click/msg " + " / ".join(f"{v:,.0f}" for v in figures.ingest[cpm])
                 for cpm in cpms]
        parts.append("top 100 " + " / ".join(f"{v:.3f}" for v in figures.top_delay) + " s")
        parts.append("per-ad " + " / ".join(f"{v:.3f}" for v in figures.all_delay) + " s")
        parts.append("replay " + " / ".join(f"{v:,.0f}" for v in figures.replay_rate))
        lines.append(f"- `{name}`: " + "; ".join(parts))
    return "\n".join(lines)
