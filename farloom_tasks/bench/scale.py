"""``farloom bench scale``: ingest with a large raw table, its COPY ceiling, disk, a
partition drop and long API windows, in one run and one throw-away environment.

In order (the method, as the docs print it: bench/scale_report.py):
1. into an empty raw table: Farloom's preloaded drains of 100-click messages
   (``bench ingest``'s harness, bench/ingest.py), interleaved with the bare COPY
   ceiling (bench/copy_ceiling.py);
2. ``--rows`` older clicks loaded with SQL into hour partitions before the
   traffic's hour (bench/raw_history.py, planned by bench/scale_plan.py), and
   their bytes on disk;
3. the same drains with those rows in place;
4. two sustained runs at the same rate, the second while the oldest loaded
   partition is detached and dropped;
5. the top 100 over 24 hours, 7 days and 30 days (bench/scale_api.py).
The environment (and every loaded row) is dropped at the end, also on errors.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime

import orjson
from tqdm import tqdm

from farloom_tasks.bench import copy_ceiling, ingest, raw_history, scale_api
from farloom_tasks.bench import report as bench_report
from farloom_tasks.bench.env import BenchEnv, describe_machine, isolated_bench_env
from farloom_tasks.bench.options import ScaleOptions
from farloom_tasks.bench.scale_plan import CLICKS_PER_MESSAGE, check, load_plan
from farloom_tasks.bench.scale_report import (
    SECTION,
    WINDOWS,
    ScaleFigures,
    Sustained,
    markdown,
    targets,
)
from farloom_tasks.bench.traffic import Traffic
from farloom_tasks.core.traffic import COUNTRIES
from farloom_tasks.errors import BenchFailed
from farloom_tasks.settings import Settings

DRAIN_CAP = 600.0  # s a preloaded drain may take
DROP_AT = 0.4  # of the sustained window: when the partition drop starts


def _drains(env: BenchEnv, traffic: Traffic, options: ScaleOptions, keep: set[str],
            label: str, figures: ScaleFigures, rates: list[float],
            ceiling: list[str] | None = None) -> None:
    """``--repeat`` Farloom drains into ``rates``; with ``ceiling``, a COPY run after each."""
    steps = options.repeat * (2 if ceiling is not None else 1)
    with tqdm(total=steps, desc=label, unit="run", file=sys.stderr) as bar:
        for _ in range(options.repeat):
            row = ingest.run_preloaded(env, "farloom", traffic, options.messages, DRAIN_CAP,
                                       ingest.DEFAULT.idle_seconds, keep=keep)
            figures.complete = figures.complete and row.complete
            rates.append(row.clicks_per_s)
            bar.update()
            if ceiling is not None:
                figures.ceiling_rates.append(copy_ceiling.measure(env, ceiling))
                bar.update()


def _sustained(env: BenchEnv, traffic: Traffic, options: ScaleOptions, keep: set[str],
               drop: str | None, drop_start: int = 0, dropped_rows: int | None = None
               ) -> Sustained:
    sizes = replace(ingest.DEFAULT, duration=options.duration)
    took: list[float] = []
    failed: list[BaseException] = []

    def drop_partition() -> None:
        time.sleep(options.duration * DROP_AT)
        try:
            took.append(raw_history.drop(env, drop_start))
        except Exception as exc:  # reported after the run, not lost in a thread
            failed.append(exc)

    row = ingest.run_sustained(env, "farloom", traffic, options.rate, sizes, keep=keep,
                               while_publishing=drop_partition if drop else None)
    if failed:
        raise BenchFailed(f"dropping {drop} during the sustained run failed: {failed[0]}")
    label = "while a partition drop runs" if drop else "without a drop"
    return Sustained(label, options.rate, row.clicks_per_s, row.complete, bool(row.kept_up),
                     row.latency_p50_s, row.latency_p99_s,
                     drop_seconds=took[0] if took else None,
                     dropped_rows=dropped_rows if drop else None, dropped_partition=drop or "")


def measure(env: BenchEnv, options: ScaleOptions) -> ScaleFigures:
    settings = env.settings
    plan = load_plan(options.rows, options.load_rate, time.time())
    traffic = Traffic(CLICKS_PER_MESSAGE, time.time(), seed=options.seed)
    figures = ScaleFigures(
        rows_loaded=options.rows, partitions_loaded=len(plan), load_rate=options.load_rate,
        load_seconds=0.0, clicks_per_drain=options.messages * CLICKS_PER_MESSAGE,
        batch_size=settings.batch_size)
    ceiling = copy_ceiling.batches(traffic, options.messages, settings.batch_size)
    figures.checkpointed = raw_history.settle(env)
    _drains(env, traffic, options, set(), "ingest into an empty raw table and the COPY ceiling",
            figures, figures.empty_rates, ceiling)

    loaded = raw_history.load(env, plan, COUNTRIES)
    figures.load_seconds = loaded.seconds
    print(f"loaded {options.rows:,} rows in {loaded.seconds:,.0f} s "
          f"({options.rows / max(loaded.seconds, 1e-9):,.0f} rows/s)", file=sys.stderr)
    figures.checkpointed = raw_history.settle(env) and figures.checkpointed
    size = raw_history.size(env, loaded.partitions)
    figures.raw_bytes, figures.raw_heap_bytes, figures.raw_index_bytes = (
        size.total, size.heap, size.indexes)
    keep = set(loaded.partitions)
    _drains(env, traffic, options, keep, f"ingest with {options.rows:,} rows in raw", figures,
            figures.loaded_rates)

    oldest = loaded.partitions[0]
    figures.sustained = [
        _sustained(env, traffic, options, keep, None),
        _sustained(env, traffic, options, keep, oldest, plan[0].start, loaded.rows[oldest]),
    ]

    env.reset()  # the loaded rows go: the API part needs the disk and the cache
    filled = scale_api.fill(env, options.minute_days, options.rollup_days,
                            options.ads_per_minute, options.universe)
    figures.api_rows, figures.api_load_seconds = filled.rows, filled.seconds
    print(f"filled agg in {filled.seconds:,.0f} s", file=sys.stderr)
    figures.api = scale_api.measure(env, filled.last, WINDOWS, options.requests)
    return figures


def run(options: ScaleOptions, settings: Settings) -> int:
    """Run it all, print the Markdown report; 0 once it is written."""
    check(options)
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    with isolated_bench_env(settings) as env:
        machine = describe_machine(env.settings)
        figures = measure(env, options)
    load_after = os.getloadavg()
    found = targets(figures)
    context = (f"Measured {started:%Y-%m-%d %H:%M} UTC with `farloom {options.command_line}`. "
               f"1-minute load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
               f"on {os.cpu_count()} cores: figures from a shared machine are indicative only.")
    text = markdown(figures, found, context)
    print(text)
    if options.report:
        options.report.write_text(orjson.dumps(
            {"figures": asdict(figures), "targets": [asdict(t) for t in found],
             "machine": machine, "load_average": [load_before[0], load_after[0]]},
            option=orjson.OPT_INDENT_2).decode())
    if options.write_docs:
        bench_report.write_section(SECTION, text, options.docs,
                                   machine=bench_report.machine_markdown(machine))
        print(f"updated {options.docs}", file=sys.stderr)
    return 0

