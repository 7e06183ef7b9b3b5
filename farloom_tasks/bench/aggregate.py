"""``farloom bench aggregate``: closing one big minute with its slices, against PostgreSQL
alone and against a close without slice work.

The workload is one minute of ``--clicks`` clicks over exactly ``--ads`` ads
(each ad at least once, the rest Zipf), loaded straight into ``raw.ad_clicks``
(COPY) and the per-shard Redis sorted sets (pipelined), in an isolated
environment (``bench/env.py``; the workload: ``bench/aggregate_workload.py``).
Then the real pipeline runs as subprocesses (``bench/aggregate_stack.py``): a
Celery worker, Celery beat (whose ``close_due_minutes`` tick closes the minute)
and the aggregated writer. The grace period is chosen so that the minute's
deadline falls a warm-up after loading; the delays are measured from that
deadline until the top k, and then every per-ad count, are committed in agg.

Compared in the same run:
- PostgreSQL only: one transaction of INSERT ... SELECT ... GROUP BY over
  ``raw.ad_clicks`` writing the same three tables. Its duration is reported as
  its delay, i.e. as if it started exactly at the deadline (favouring it).
- Replay from raw: ``replay.rebuild_from_raw`` alone (raw clicks/s), and the
  whole ``farloom.replay_minute`` task until the new revision is final in agg,
  ``--replays`` times; the target is judged on the median replay.
- Slices (``bench/aggregate_slices.py``): the clicks carry every optional field and
  their ads are in the catalog. A baseline minute is closed first, 60 s before the
  sliced one, its slice task finding nothing to do; then the sliced minute, timed to
  its top k, its per-ad counts and every slice committed. Then the slice close alone
  (``slice_aggregation.recompute``), before and after ``--history-minutes`` of earlier
  minutes are loaded.
Every result is checked against the workload's own counts before it is reported
(``bench/aggregate_sql.py`` holds the check, the baseline and the GROUP BY floor;
``bench/aggregate_slices.py`` the slices' check).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from farloom_tasks import processes as child_processes
from farloom_tasks.bench import aggregate_slices
from farloom_tasks.bench.aggregate_sql import check_exact, group_by_seconds, postgresql_only
from farloom_tasks.bench.aggregate_stack import (
    STOP_GRACE,
    pipeline_processes,
    wait_for_each,
    wait_until,
)
from farloom_tasks.bench.aggregate_workload import Workload
from farloom_tasks.bench.env import BenchEnv, describe_machine, isolated_bench_env
from farloom_tasks.bench.options import AggregateOptions
from farloom_tasks.bench.report import machine_markdown, slower_middle, write_section
from farloom_tasks.bench.slice_workload import SlicedMinute, make_sliced_minute
from farloom_tasks.core.dimensions import parse_dimensions
from farloom_tasks.core.windows import MINUTE, iso, minute_of
from farloom_tasks.errors import BenchFailed, FarloomError
from farloom_tasks.pipeline import replay, slice_aggregation
from farloom_tasks.settings import Settings
from farloom_tasks.stores import db, redis_client, redis_counts
from farloom_tasks.stores.raw import RawStore

SECTION = "aggregate"
SLICES_SECTION = "slices-at-close"


@dataclass
class Figures:
    top_delay: float  # s from the deadline until the top k was committed
    all_delay: float  # s from the deadline until every per-ad count was committed
    pg_only: float  # s of the PostgreSQL-only transaction
    rebuild_seconds: float  # s of replay.rebuild_from_raw
    # s from sending farloom.replay_minute until its revision was final, per replay
    replay_seconds: list[float]
    warm: bool  # the pipeline had closed an earlier minute before the deadline
    claimed_delay: float  # s from the deadline until the tick claimed the minute
    published_delay: float  # s from the deadline until merge_minute's parts were confirmed
    group_by_seconds: float  # s of the raw GROUP BY alone: the floor of a replay from raw
    load_average: float  # the machine's 1-minute load average when the minute closed
    slices: SliceFigures | None = None


@dataclass
class SliceFigures:
    """The sliced minute's close against the baseline minute's (no slice work)."""

    baseline_top_delay: float  # s after its deadline: the baseline minute's top k
    baseline_all_delay: float  # and every per-ad count of it
    baseline_load_average: float
    slices_delay: float  # s after the deadline until every slice of the minute was seen committed
    slices_began_delay: float  # s after the deadline of the latest agg.slice_minutes.computed_at
    # s from sending farloom.replay_minute until every slice of its revision was committed
    replay_slices_seconds: list[float]
    # the slice close alone, in this process (slice_aggregation.recompute), s per run:
    alone_seconds: list[float]  # with the tables as the pipeline left them
    history_seconds: list[float]  # after loading the history
    history: str  # what the history held, for the report
    stored_rows: tuple[int, int]  # raw rows, then agg.slice_values rows, after the history
    values: int  # (slice, value) pairs of the minute
    ad_counts: int  # (slice, value, ad) counts of the minute


_TOP = "SELECT 1 FROM agg.top_ads WHERE minute = to_timestamp(:m) LIMIT 1"
_ALL = "SELECT 1 FROM agg.minute_totals WHERE minute = to_timestamp(:m)"
_SLICES = ("SELECT count(*) = :n FROM agg.slice_minutes "
           "WHERE minute = to_timestamp(:m) AND revision > :r")


def _close(engine: sa.Engine, m: int, deadline: float, names: list[str], timeout: float,
           processes: dict[str, Any], logs: Path) -> dict[str, float]:
    """Wait for minute ``m``'s close; the delays after ``deadline`` of each step seen."""
    seen = wait_for_each(engine, {"top": _TOP, "all": _ALL, "slices": _SLICES}, timeout,
                         processes, logs, m=m, n=len(names), r=0)
    return {name: at - deadline for name, at in seen.items()}


def _recompute_seconds(env: BenchEnv, engine: sa.Engine, sliced: SlicedMinute,
                       truth: aggregate_slices.SliceTruth, runs: int) -> list[float]:
    """The slice close alone (a forced revision, in this process), ``runs`` times, checked."""
    settings = env.settings
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        written = slice_aggregation.recompute(
            engine, sliced.slices, minute=sliced.workload.minute,
            partition_hours=settings.minute_partition_hours,
            work_mem_mb=settings.slice_work_mem_mb)
        seconds.append(time.perf_counter() - started)
        aggregate_slices.check(engine, truth, sliced.workload.minute, written.revision)
    return seconds


def _stored_rows(engine: sa.Engine) -> tuple[int, int]:
    with db.translated_errors(), engine.connect() as conn:
        return (int(conn.execute(sa.text("SELECT count(*) FROM raw.ad_clicks")).scalar() or 0),
                int(conn.execute(sa.text("SELECT count(*) FROM agg.slice_values")).scalar()
                    or 0))


def _claimed_and_published(engine: sa.Engine, m: int) -> tuple[float, float]:
    """When the close tick claimed minute ``m`` and when its parts were confirmed."""
    with db.translated_errors(), engine.connect() as conn:
        claimed_at, published_at = conn.execute(sa.text(
            "SELECT extract(epoch FROM requested_at)::float8, "
            "extract(epoch FROM published_at)::float8 FROM agg.minute_closes "
            "WHERE minute = to_timestamp(:m)"), {"m": m}).one()
    return float(claimed_at), float(published_at)


def _rebuild_seconds(engine: sa.Engine, settings: Settings, workload: Workload) -> float:
    """Seconds of ``replay.rebuild_from_raw`` of the minute, checked against the workload."""
    raw = RawStore(engine, settings.shard_count)
    counts = redis_counts.RedisCounts(redis_client.connect(settings),
                                      settings.redis_retention_seconds)
    started = time.perf_counter()
    rebuilt = replay.rebuild_from_raw(engine, raw, counts, workload.minute, settings.shard_count)
    seconds = time.perf_counter() - started
    if (rebuilt.clicks, rebuilt.distinct_ads) != (workload.clicks, len(workload.counts)):
        raise BenchFailed(f"the rebuild from raw found {rebuilt.clicks} clicks over "
                          f"{rebuilt.distinct_ads} ads")
    return seconds


def measure(env: BenchEnv, workload: Workload, options: AggregateOptions,
            logs: Path) -> Figures:
    settings = env.settings
    engine = db.make_engine(settings.database_url, pool_size=1)
    m = workload.minute
    try:
        deadline = time.time() + options.warmup
        grace = deadline - (m + MINUTE)
        print(f"deadline of {iso(m)} in {options.warmup:.0f} s (grace {grace:.1f} s); "
              "starting the Celery worker, beat and the aggregated writer", file=sys.stderr)
        with pipeline_processes(env, logs, grace, options.writers) as processes:
            # The first tick closes the (empty) minute before: proof the chain is up.
            warm_at = wait_until(
                engine, "SELECT 1 FROM agg.minute_totals WHERE minute = to_timestamp(:m)",
                options.timeout, "the pipeline to close the minute before", processes, logs,
                m=m - MINUTE)
            top_at = wait_until(
                engine, "SELECT 1 FROM agg.top_ads WHERE minute = to_timestamp(:m) LIMIT 1",
                options.timeout + options.warmup, "the top k", processes, logs, m=m)
            all_at = wait_until(
                engine, "SELECT 1 FROM agg.minute_totals WHERE minute = to_timestamp(:m)",
                options.timeout, "every per-ad count", processes, logs, m=m)
            load_average = os.getloadavg()[0]
            first_revision = check_exact(engine, workload, settings.top_k)
            claimed_at, published_at = _claimed_and_published(engine, m)
            # No reconciliation may replay behind our back.
            child_processes.stop(processes.pop("beat"), grace=STOP_GRACE, group=True)
            rebuild_seconds = _rebuild_seconds(engine, settings, workload)

            from farloom_tasks.celery import make_app  # Celery only for this one send

            app = make_app(replace(settings, grace_seconds=grace))
            replay_seconds: list[float] = []
            replayed_revision = first_revision
            # Several replays, one after the other: a single one swings too much to judge
            # the target on (how much: docs/benchmarks.md, "Figures behind the code").
            for _ in range(options.replays):
                sent = time.perf_counter()
                app.send_task("farloom.replay_minute", args=[m, "raw"])
                wait_until(engine, "SELECT 1 FROM agg.minute_totals "
                            "WHERE minute = to_timestamp(:m) AND revision > :r",
                            options.timeout, "the replayed revision", processes, logs,
                            m=m, r=replayed_revision)
                replay_seconds.append(time.perf_counter() - sent)
                replayed_revision = check_exact(engine, workload, settings.top_k)
        pg_only = postgresql_only(engine, workload, settings.top_k, replayed_revision + 1)
        return Figures(top_delay=top_at - deadline, all_delay=all_at - deadline,
                       pg_only=pg_only, rebuild_seconds=rebuild_seconds,
                       replay_seconds=replay_seconds, warm=warm_at < deadline,
                       claimed_delay=claimed_at - deadline,
                       published_delay=published_at - deadline,
                       group_by_seconds=group_by_seconds(engine, m),
                       load_average=load_average)
    finally:
        engine.dispose()


def measure_sliced(env: BenchEnv, sliced: SlicedMinute, truth: aggregate_slices.SliceTruth,
            options: AggregateOptions, logs: Path) -> Figures:
    """Close the baseline minute (before the sliced one) without slice work, then the
    sliced minute with it; replay the sliced one; then time its slice close alone."""
    settings = env.settings
    workload = sliced.workload
    engine = db.make_engine(settings.database_url, pool_size=1)
    m, baseline = workload.minute, workload.minute - MINUTE
    names = list(truth.names)
    try:
        aggregate_slices.hold_off_slices(engine, names, baseline)
        baseline_deadline = time.time() + options.warmup
        deadline = baseline_deadline + MINUTE
        grace = baseline_deadline - (baseline + MINUTE)
        print(f"deadline of {iso(baseline)} (no slice work) in {options.warmup:.0f} s, of "
              f"{iso(m)} (slices) {MINUTE} s later (grace {grace:.1f} s); starting the Celery "
              "worker, beat and the aggregated writer", file=sys.stderr)
        with pipeline_processes(env, logs, grace, options.writers) as processes:
            # The first tick closes the (empty) minute before: proof the chain is up.
            warm_at = wait_until(engine, _ALL, options.timeout,
                                 "the pipeline to close the minute before", processes, logs,
                                 m=baseline - MINUTE)
            base = wait_for_each(engine, {"top": _TOP, "all": _ALL},
                                 options.timeout + options.warmup, processes, logs, m=baseline)
            baseline_load = os.getloadavg()[0]
            check_exact(engine, replace(workload, minute=baseline), settings.top_k)
            with db.translated_errors(), engine.connect() as conn:
                if conn.execute(sa.text("SELECT count(*) FROM agg.slice_values "
                                        "WHERE minute = to_timestamp(:m)"), {"m": baseline}
                                ).scalar():
                    raise BenchFailed("the baseline minute got slice rows: it was not a "
                                      "close without slice work")
            delays = _close(engine, m, deadline, names, options.timeout + MINUTE, processes,
                            logs)
            load_average = os.getloadavg()[0]
            first_revision = check_exact(engine, workload, settings.top_k)
            aggregate_slices.check(engine, truth, m, first_revision)
            claimed_at, published_at = _claimed_and_published(engine, m)
            with db.translated_errors(), engine.connect() as conn:
                began_at = conn.execute(sa.text(
                    "SELECT extract(epoch FROM max(computed_at))::float8 FROM agg.slice_minutes "
                    "WHERE minute = to_timestamp(:m)"), {"m": m}).scalar()
            # No reconciliation may replay behind our back.
            child_processes.stop(processes.pop("beat"), grace=STOP_GRACE, group=True)
            rebuild_seconds = _rebuild_seconds(engine, settings, workload)

            from farloom_tasks.celery import make_app  # Celery only for this one send

            app = make_app(replace(settings, grace_seconds=grace))
            replay_seconds: list[float] = []
            replay_slices: list[float] = []
            replayed_revision = first_revision
            # Several replays, one after the other: a single one swings too much to judge
            # the target on (how much: docs/benchmarks.md, "Figures behind the code").
            # Each waits for its slices too, so no replay runs beside an earlier one's.
            for _ in range(options.replays):
                sent = time.time()
                app.send_task("farloom.replay_minute", args=[m, "raw"])
                seen = wait_for_each(
                    engine, {"all": "SELECT 1 FROM agg.minute_totals WHERE minute = "
                                    "to_timestamp(:m) AND revision > :r", "slices": _SLICES},
                    options.timeout, processes, logs, m=m, r=replayed_revision, n=len(names))
                replay_seconds.append(seen["all"] - sent)
                replay_slices.append(seen["slices"] - sent)
                replayed_revision = check_exact(engine, workload, settings.top_k)
                aggregate_slices.check(engine, truth, m, replayed_revision)
        pg_only = postgresql_only(engine, workload, settings.top_k, replayed_revision + 1)
        group_by = group_by_seconds(engine, m)
        alone = _recompute_seconds(env, engine, sliced, truth, options.slice_runs)
        history = (f"{options.history_minutes:,} earlier minutes of "
                   f"{options.history_clicks:,} clicks each")
        if options.history_minutes:
            print(f"loading the history: {history}", file=sys.stderr)
            aggregate_slices.load_history(env, sliced.slices, baseline, options.history_minutes,
                                          options.history_clicks, sorted(workload.counts))
            with_history = _recompute_seconds(env, engine, sliced, truth, options.slice_runs)
        else:
            with_history = []
        slice_figures = SliceFigures(
            baseline_top_delay=base["top"] - baseline_deadline,
            baseline_all_delay=base["all"] - baseline_deadline,
            baseline_load_average=baseline_load, slices_delay=delays["slices"],
            slices_began_delay=float(began_at or 0.0) - deadline,
            replay_slices_seconds=replay_slices, alone_seconds=alone,
            history_seconds=with_history, history=history, stored_rows=_stored_rows(engine),
            values=truth.values, ad_counts=truth.ad_counts)
        return Figures(top_delay=delays["top"], all_delay=delays["all"],
                       pg_only=pg_only, rebuild_seconds=rebuild_seconds,
                       replay_seconds=replay_seconds, warm=warm_at < baseline_deadline,
                       claimed_delay=claimed_at - deadline,
                       published_delay=published_at - deadline,
                       group_by_seconds=group_by, load_average=load_average,
                       slices=slice_figures)
    finally:
        engine.dispose()


def report(figures: Figures, workload: Workload, settings: Settings, writers: int,
           redis: str = "on one Redis server") -> str:
    """The Markdown report; ``redis`` says where the counts lived (``describe_machine``)."""
    clicks = workload.clicks
    rebuild_rate = clicks / figures.rebuild_seconds
    replays = figures.replay_seconds
    median_replay = slower_middle(replays)
    replay_rate = clicks / median_replay
    rows = [
        ("pipeline step: the close tick claimed the minute, after the deadline",
         f"{figures.claimed_delay:.3f} s", "", "", None),
        ("pipeline step: every part published and confirmed, after the deadline",
         f"{figures.published_delay:.3f} s", "", "", None),
        ("top 100 committed, after the deadline", f"{figures.top_delay:.3f} s",
         f"{figures.pg_only:.3f} s", "<= 1 s", figures.top_delay <= 1.0),
        ("every per-ad count committed, after the deadline", f"{figures.all_delay:.3f} s",
         f"{figures.pg_only:.3f} s", "<= PostgreSQL only", figures.all_delay <= figures.pg_only),
        ("replay from raw, step: rebuild the Redis sets", f"{rebuild_rate:,.0f} raw clicks/s "
         f"({figures.rebuild_seconds:.3f} s)", "", "", None),
        ("replay from raw, step: the raw GROUP BY alone (its floor)",
         f"{clicks / figures.group_by_seconds:,.0f} raw clicks/s "
         f"({figures.group_by_seconds:.3f} s)", "", "", None),
        (f"replay from raw: the whole `replay_minute` task until the new revision is final "
         f"in agg (median of {len(replays)}: {', '.join(f'{r:.3f} s' for r in replays)})",
         f"{math.floor(replay_rate):,} raw clicks/s ({median_replay:.3f} s)", "",
         ">= 500,000 raw clicks/s", replay_rate >= 500_000),
    ]
    lines = [
        f"Workload: {clicks:,} clicks in one minute over {len(workload.counts):,} ads "
        f"(one each, the rest Zipf), {settings.shard_count} shards, top {settings.top_k}, "
        f"{settings.aggregate_chunk_ads:,} ads per aggregates message; Celery worker with "
        f"{os.cpu_count()} processes, {writers} aggregated writer(s), beat ticking every "
        f"{settings.close_tick_seconds:g} s; the Redis counts {redis}. PostgreSQL only = "
        "one INSERT ... SELECT ... GROUP BY transaction writing the same tables, timed as if "
        "it started at the deadline. "
        "Every result was checked exact against the workload. Load average when the minute "
        f"closed: {figures.load_average:.1f} (other work shares this machine's cores, so "
        "single runs vary by a second or more)."
        + ("" if figures.warm else " **The pipeline was not warm at the deadline.**")
        + ("" if figures.slices is None else " The minute was closed with its slices, made "
           "beside the per-ad close (\"Slices at close\"), and every replay waited for its "
           "slices before the next."),
        "",
        "| measure | Farloom | PostgreSQL only | target | met |",
        "|---|---:|---:|---|---|",
    ]
    for name, ours, theirs, target, met in rows:
        verdict = "" if met is None else ("met" if met else "**not met**")
        lines.append(f"| {name} | {ours} | {theirs} | {target} | {verdict} |")
    return "\n".join(lines)


def _seconds(value: float) -> str:
    """Seconds to the millisecond, truncated (never rounded up before a target)."""
    return f"{math.floor(value * 1000) / 1000:.3f} s"


def _runs(values: list[float]) -> str:
    return ", ".join(_seconds(v) for v in values)


def slices_report(figures: Figures, workload: Workload, truth: aggregate_slices.SliceTruth,
                  settings: Settings, started: datetime, command: str) -> str:
    """The "Slices at close" section: the sliced minute against the one without slice work."""
    sf = figures.slices
    assert sf is not None
    cost = figures.top_delay - sf.baseline_top_delay
    lines = [
        f"Measured {started:%Y-%m-%d %H:%M} UTC with `{command}`. Workload: "
        f"{workload.clicks:,} clicks in one minute over {len(workload.counts):,} ads (one each, "
        "the rest Zipf), every click with a random UUIDv4 click id and every optional field "
        "(`user_id`, `ip`, `country` out of 50, `device` out of 5, `campaign_id` and "
        f"`advertiser_id`: 20 ads per campaign, 10 campaigns per advertiser, all in `agg.ads`); "
        f"FARLOOM_DIMENSIONS={settings.dimensions}, so the slices {', '.join(truth.names)}: "
        f"{sf.values:,} (slice, value) pairs holding {sf.ad_counts:,} (slice, value, ad) counts; "
        f"FARLOOM_SLICE_WORK_MEM_MB={settings.slice_work_mem_mb}. The real pipeline (beat's "
        "close tick, the chord, the aggregated writer, `farloom.aggregate_slices` on the same "
        f"Celery worker of {os.cpu_count()} processes) closed two such minutes 60 s apart in "
        "one run: first a **baseline** minute whose slice task was queued as always but found "
        "its slices already at a newer revision (rows put in `agg.slice_minutes` beforehand), "
        "so it did no slice work, then the minute with its slices. Delays are from each "
        "minute's deadline to the commit seen by polling agg every 10 ms. Every per-ad count, "
        "top 100 and slice was checked exact against the workload. 1-minute load average on "
        f"{os.cpu_count()} shared cores: {sf.baseline_load_average:.2f} when the baseline "
        f"closed, {figures.load_average:.2f} when the sliced minute did.",
        "",
        "| measure | with slices | baseline (no slice work) | target | met |",
        "|---|---:|---:|---|---|",
        f"| top 100 committed, after the deadline | {_seconds(figures.top_delay)} | "
        f"{_seconds(sf.baseline_top_delay)} | <= 1 s | "
        f"{'met' if figures.top_delay <= 1.0 else '**not met**'} |",
        f"| every per-ad count committed, after the deadline | {_seconds(figures.all_delay)} | "
        f"{_seconds(sf.baseline_all_delay)} |  |  |",
        f"| the slice transaction began (latest `agg.slice_minutes.computed_at`), after the "
        f"deadline | {_seconds(sf.slices_began_delay)} |  |  |  |",
        f"| every slice committed, after the deadline | {_seconds(sf.slices_delay)} |  | "
        f"<= 2 s | {'met' if sf.slices_delay <= 2.0 else '**not met**'} |",
        f"| replay from raw: every slice of the new revision committed, after sending "
        f"`replay_minute` (each run: {_runs(sf.replay_slices_seconds)}) | "
        f"{_seconds(slower_middle(sf.replay_slices_seconds))} |  |  |  |",
        "",
        f"The slices cost the top 100 {cost * 1000:+.0f} ms against the baseline in this run "
        "(one close each; single closes on this machine vary by a few hundred ms).",
        "",
        "**The slice close alone, as stored data grows**: `slice_aggregation.recompute` (a "
        "fresh revision: partition, lock, DELETE and the one INSERT from raw) in the "
        "benchmark's process with the pipeline stopped, each run checked exact:",
        "",
        "| stored data | runs | median |",
        "|---|---|---:|",
        f"| the run's own two minutes (2 x {workload.clicks:,} raw clicks) | "
        f"{_runs(sf.alone_seconds)} | {_seconds(slower_middle(sf.alone_seconds))} |",
    ]
    if sf.history_seconds:
        raw_rows, slice_rows = sf.stored_rows
        lines.append(
            f"| plus {sf.history} before them ({raw_rows:,} raw rows in all, {slice_rows:,} "
            f"`agg.slice_values` rows, per-ad rows in agg) | {_runs(sf.history_seconds)} | "
            f"{_seconds(slower_middle(sf.history_seconds))} |")
    return "\n".join(lines)


def run(options: AggregateOptions, settings: Settings) -> int:
    """Load the minutes, close and replay them, print the report; 0 once it is written."""
    logging.getLogger("pika").setLevel(logging.WARNING)  # its INFO lines drown the progress
    if options.replays < 1 or options.slice_runs < 1 or options.history_minutes < 0:
        raise FarloomError("--replays and --slice-runs must be at least 1, "
                           "--history-minutes at least 0")
    started = datetime.now(UTC)
    with isolated_bench_env(settings) as env, tempfile.TemporaryDirectory(
            prefix="farloom-bench-aggregate-") as tmp:
        logs = Path(options.logs or tmp)
        logs.mkdir(parents=True, exist_ok=True)
        machine = describe_machine(env.settings)
        minute = minute_of(time.time()) - MINUTE
        sliced = make_sliced_minute(minute, options.clicks, options.ads, options.zipf,
                                    options.seed, parse_dimensions(env.settings.dimensions))
        truth = aggregate_slices.expected(sliced)
        aggregate_slices.load(env, sliced, [minute - MINUTE, minute], options.seed)
        try:
            figures = measure_sliced(env, sliced, truth, options, logs)
        except BenchFailed:
            for log in sorted(logs.glob("*.log")):
                tail = log.read_text(errors="replace").splitlines()[-15:]
                print(f"--- {log.name} (last lines)\n" + "\n".join(tail), file=sys.stderr)
            raise
    workload = sliced.workload
    body = report(figures, workload, env.settings, options.writers,
                  f"on {dict(machine)['Redis']}" if env.settings.redis_cluster
                  else "on one Redis server")
    slices = slices_report(figures, workload, truth, env.settings, started,
                           options.command_line)
    print(body + "\n\n" + slices)
    if options.report:
        options.report.write_text(json.dumps(
            {"figures": asdict(figures), "clicks": workload.clicks, "ads": len(workload.counts),
             "slices": list(truth.names), "machine": machine}, indent=2))
    if options.write_docs:
        section = "\n".join(["## Aggregation", "", machine_markdown(machine), "", body])
        write_section(SECTION, section, options.docs)
        write_section(SLICES_SECTION, "## Slices at close\n\n" + slices, options.docs)
        print(f"wrote {options.docs}", file=sys.stderr)
    return 0
