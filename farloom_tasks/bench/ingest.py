"""``farloom bench ingest``: Farloom's ingest worker against two baseline consumers.

Every consumer is a subprocess reading the same messages from the same queue of
an isolated environment (``bench/env.py``), in two modes:
- preloaded: N messages are published (and confirmed) first; the consumer's
  own drain rate is reported (first delivery to last ack/exit);
- sustained: the publisher runs at a fixed rate for ``--duration`` seconds
  while the consumer runs; the rate reported is the steady one inside the
  window (after a warm-up), and how far behind the consumer was when
  publishing stopped says whether it kept up.
The figures are only as good as the machine is quiet: the report says so.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from farloom_tasks.bench import report
from farloom_tasks.bench.consumers import (
    EXIT_TIMEOUT,
    READY_TIMEOUT,
    Consumer,
    wait_for_consumer,
)
from farloom_tasks.bench.env import BenchEnv, describe_machine, isolated_bench_env
from farloom_tasks.bench.options import BOTH, CONSUMER_KINDS, IngestOptions
from farloom_tasks.bench.report import PRELOADED, SUSTAINED, Row
from farloom_tasks.bench.traffic import (
    FIELDS_ALL,
    FIELDS_WITHOUT_NEW,
    NEW_FIELDS,
    PacedSource,
    Traffic,
    publish,
)
from farloom_tasks.errors import FarloomError
from farloom_tasks.settings import Settings

WARMUP_FRACTION = 0.2  # of a sustained window, left out of its steady rate
# A consumer kept up if, when publishing stops, it is less than this many seconds of
# offered traffic behind (the latency target is 1 s).
KEPT_UP_SECONDS = 1.0
PUBLISHER_SHORTFALL = 0.95  # below this share of the offered rate, the row says so


@dataclass(frozen=True)
class Sizes:
    messages: dict[int, int]  # preloaded messages per clicks/msg, for (a) and (c)
    naive_messages: dict[int, int]  # the naive consumer's smaller share
    naive_cap: float  # s the naive consumer may take for a preloaded drain
    rates: dict[int, list[float]]  # sustained offered clicks/s per clicks/msg
    duration: float  # s of publishing in a sustained run
    drain_cap: float  # s a consumer may take after the window to finish the backlog
    naive_drain_cap: float  # the same for the naive consumer, which never catches up at speed
    idle_seconds: float  # s the burst-mode ingest worker waits on an empty queue before exiting


# Preloads big enough that the worker's start (a 200-message window until its first
# batch shows the message size) and the end of the burst (a short quiet, then the last
# write) are a small share of the drain, so the ratio to the null consumer is about
# capacity, not start-up. The drain times behind this choice: docs/benchmarks.md,
# "Figures behind the code".
DEFAULT = Sizes(messages={1: 100_000, 100: 3_000}, naive_messages={1: 2_000, 100: 20},
                naive_cap=30.0, rates={1: [5_000, 12_000], 100: [60_000]}, duration=15.0,
                drain_cap=20.0, naive_drain_cap=2.0, idle_seconds=1.0)
QUICK = Sizes(messages={1: 300, 100: 30}, naive_messages={1: 100, 100: 5}, naive_cap=30.0,
              rates={1: [200], 100: [1_000]}, duration=2.0, drain_cap=20.0,
              naive_drain_cap=20.0, idle_seconds=0.3)


def _clicks_at(timeline: list[list[float]], moment: float) -> int:
    """Clicks acked by ``moment`` according to a baseline's timeline (never overstated)."""
    done = 0
    for at, clicks in timeline:
        if at > moment:
            break
        done = int(clicks)
    return done


def _rss_mb(consumer: Consumer, figures: dict[str, Any]) -> float:
    # The worker's own figure may catch a peak between two samples; take the larger.
    return max(consumer.peak_rss / 2**20, float(figures.get("peak_rss_mb") or 0.0))


def _consumer_args(kind: str, expect: int, cap: float, stats_file: Path | None,
                   idle_seconds: float) -> list[str]:
    if kind != "farloom":
        return ["--expect-messages", str(expect), "--time-cap", f"{cap:g}"]
    if stats_file is None:
        return ["--burst", "--idle-seconds", f"{idle_seconds:g}"]
    return ["--stats-file", str(stats_file)]


def _done(kind: str, figures: dict[str, Any]) -> tuple[int, int]:
    """(messages, clicks) the consumer processed; Farloom's clicks are the ones stored."""
    clicks = figures.get("clicks_stored", 0) if kind == "farloom" else figures.get("clicks", 0)
    return int(figures.get("messages", 0)), int(clicks)


def _complete(env: BenchEnv, kind: str, messages: int, clicks: int, count: int,
              cpm: int, keep: Collection[str] = ()) -> bool:
    """Every message and click processed; for Farloom, every click also durable in raw
    (outside the partitions in ``keep``)."""
    complete = messages == count and clicks == count * cpm
    if kind == "farloom":
        complete = complete and env.stored_clicks(keep) == count * cpm
    return complete


def run_preloaded(env: BenchEnv, kind: str, traffic: Traffic, count: int,
                  cap: float, idle_seconds: float, *, keep: Collection[str] = ()) -> Row:
    """A drain of ``count`` preloaded messages; the tables in ``keep`` are not emptied first."""
    env.reset(keep)
    cpm = traffic.clicks_per_message
    with tqdm(total=count, desc=f"  publish {count:,} x {cpm}", unit="msg", leave=False,
              file=sys.stderr) as bar:
        publish(env, PacedSource(traffic.bodies(count), count, None, bar))
    if (depth := env.ingest_queue_depth()) != count:
        raise FarloomError(f"the queue holds {depth:,} messages after publishing {count:,}")
    consumer = Consumer(env, kind, _consumer_args(kind, count, cap, None, idle_seconds))
    try:
        finished = consumer.wait(cap + READY_TIMEOUT)
        figures = consumer.figures()
    finally:
        consumer.stop()
    messages, clicks = _done(kind, figures)
    complete = _complete(env, kind, messages, clicks, count, cpm, keep)
    note = "" if complete else (f"stopped by the {cap:g} s cap" if kind != "farloom"
                                or not finished else "incomplete")
    return Row(PRELOADED, cpm, kind, count, messages, clicks,
               float(figures.get("clicks_per_s", 0.0)), complete,
               peak_rss_mb=_rss_mb(consumer, figures),
               latency_p50_s=figures.get("latency_p50_s") if kind == "farloom" else None,
               latency_p99_s=figures.get("latency_p99_s") if kind == "farloom" else None,
               note=note)


def _count_stored_at(env: BenchEnv, moments: list[float], into: list[int],
                     keep: Collection[str] = ()) -> threading.Thread:
    def count() -> None:
        for moment in moments:
            time.sleep(max(0.0, moment - time.time()))
            into.append(env.stored_clicks(keep))

    thread = threading.Thread(target=count, daemon=True)
    thread.start()
    return thread


def run_sustained(env: BenchEnv, kind: str, traffic: Traffic, rate: float,
                  sizes: Sizes, *, keep: Collection[str] = (),
                  while_publishing: Callable[[], object] | None = None) -> Row:
    """A paced run at ``rate``; the tables in ``keep`` are not emptied first, and
    ``while_publishing`` (if given) runs in a thread of its own from the first publish on."""
    env.reset(keep)
    cpm = traffic.clicks_per_message
    per_second = rate / cpm
    count = max(1, round(per_second * sizes.duration))
    drain_cap = sizes.naive_drain_cap if kind == "naive" else sizes.drain_cap
    with tempfile.TemporaryDirectory(prefix="farloom-bench-") as scratch:
        stats_file = Path(scratch) / "stats.json" if kind == "farloom" else None
        cap = READY_TIMEOUT + sizes.duration + drain_cap
        consumer = Consumer(env, kind, _consumer_args(kind, count, cap, stats_file,
                                                     sizes.idle_seconds))
        try:
            wait_for_consumer(env, consumer)
            start = time.time()
            marks = [start + max(1.0, sizes.duration * WARMUP_FRACTION), start + sizes.duration]
            stored: list[int] = []
            counter = _count_stored_at(env, marks, stored, keep) if kind == "farloom" else None
            side = None
            if while_publishing is not None:
                side = threading.Thread(target=while_publishing, daemon=True)
                side.start()
            publish(env, PacedSource(traffic.bodies(count), count, per_second))
            published_at = time.time()
            done_when_published = env.stored_clicks(keep) if kind == "farloom" else 0
            if side is not None:
                side.join()
            if counter is not None:
                counter.join(sizes.duration + EXIT_TIMEOUT)
                deadline = time.monotonic() + drain_cap
                while env.stored_clicks(keep) < count * cpm and time.monotonic() < deadline:
                    time.sleep(0.2)
            else:
                consumer.wait(drain_cap)
            figures = consumer.figures(stats_file)
        finally:
            consumer.stop()
    if kind == "farloom":
        in_window = stored[1] - stored[0] if len(stored) == 2 else 0
    else:
        timeline = figures.get("timeline", [])
        in_window = _clicks_at(timeline, marks[1]) - _clicks_at(timeline, marks[0])
        done_when_published = _clicks_at(timeline, published_at)
    # Clicks published but not yet durable (or acked) when the publisher finished; a
    # consumer's prefetch buffer hides these from the queue's ready count, so count them here.
    behind = count * cpm - done_when_published
    published_rate = count * cpm / max(published_at - start, 1e-9)
    messages, clicks = _done(kind, figures)
    complete = _complete(env, kind, messages, clicks, count, cpm, keep)
    notes = [] if complete else [f"not drained within {drain_cap:g} s"]
    if published_rate < PUBLISHER_SHORTFALL * rate:
        notes.append("publisher fell short of the offered rate")
    return Row(SUSTAINED, cpm, kind, count, messages, clicks,
               in_window / (marks[1] - marks[0]), complete,
               offered_clicks_per_s=rate, published_clicks_per_s=published_rate,
               behind_clicks=behind, kept_up=behind <= rate * KEPT_UP_SECONDS,
               peak_rss_mb=_rss_mb(consumer, figures),
               latency_p50_s=figures.get("latency_p50_s") if kind == "farloom" else None,
               latency_p99_s=figures.get("latency_p99_s") if kind == "farloom" else None,
               note="; ".join(notes))


def _sizes(options: IngestOptions) -> Sizes:
    base = QUICK if options.quick else DEFAULT
    cpms = options.clicks_per_message or sorted(base.messages)
    if any(cpm < 1 for cpm in cpms):
        raise FarloomError("--clicks-per-message must be at least 1")
    messages = {c: options.messages or base.messages.get(c, base.messages[1] // c or 1)
                for c in cpms}
    naive = {c: min(messages[c], options.naive_messages or base.naive_messages.get(
        c, max(1, base.naive_messages[1] // c))) for c in cpms}
    rates = {c: list(options.rates) or base.rates.get(c, base.rates[1]) for c in cpms}
    return Sizes(messages, naive, base.naive_cap, rates, options.duration or base.duration,
                 base.drain_cap, base.naive_drain_cap, base.idle_seconds)


def plan(sizes: Sizes, mode: str, kinds: list[str],
         repeat: int = 1) -> list[tuple[str, int, str, float]]:
    """(mode, clicks/msg, consumer, offered rate or 0) for every run, in order.

    Preloaded drains of the null consumer and Farloom run ``repeat`` times,
    interleaved, so that a slow spell of the machine hits both alike; the
    naive consumer (capped, and far slower anyway: docs/benchmarks.md, "Figures
    behind the code") runs once.
    """
    runs: list[tuple[str, int, str, float]] = []
    for cpm in sizes.messages:
        if mode in (BOTH, PRELOADED):
            runs += [(PRELOADED, cpm, kind, 0.0) for n in range(repeat) for kind in kinds
                     if n == 0 or kind != "naive"]
        if mode in (BOTH, SUSTAINED):
            runs += [(SUSTAINED, cpm, kind, rate) for rate in sizes.rates[cpm] for kind in kinds]
    return runs


DIMENSIONS_SECTION = "ingest-dimensions"
DIMENSIONS_CLICKS_PER_MESSAGE = 100
DIMENSIONS_TARGET = 0.8  # ingest with dimensions on, at least this share of off
# (variant, the traffic's fields, the catalog agg.ads kept from the run before)
DIMENSION_VARIANTS = (("off", FIELDS_WITHOUT_NEW, False),
                      ("on", FIELDS_ALL, False),
                      ("on, catalog already filled", FIELDS_ALL, True))


@dataclass(frozen=True)
class DimensionRun:
    variant: str
    clicks_per_s: float
    complete: bool
    latency_p99_s: float | None
    peak_rss_mb: float | None


def lower_middle(rates: list[float]) -> float:
    """The median of repeated rates; for an even count the lower middle: never flatters."""
    return sorted(rates)[(len(rates) - 1) // 2]


def run_dimensions(env: BenchEnv, options: IngestOptions, sizes: Sizes) -> list[DimensionRun]:
    """Farloom's preloaded drain of 100-click messages with the new fields off and on,
    interleaved ``--repeat`` times: the same clicks (ids, ads, values) each time."""
    cpm = DIMENSIONS_CLICKS_PER_MESSAGE
    count = sizes.messages.get(cpm) or DEFAULT.messages[cpm]
    base_time = time.time()
    traffic = {fields: Traffic(cpm, base_time, click_ids=options.click_ids, fields=fields)
               for _, fields, _ in DIMENSION_VARIANTS}
    runs: list[DimensionRun] = []
    plan = [variant for _ in range(1 if options.quick else options.repeat)
            for variant in DIMENSION_VARIANTS]
    with tqdm(plan, desc="bench ingest, dimensions off/on", unit="run", file=sys.stderr) as bar:
        for variant, fields, keep_catalog in bar:
            bar.set_postfix_str(variant)
            row = run_preloaded(env, "farloom", traffic[fields], count, 600.0,
                                sizes.idle_seconds, keep=("agg.ads",) if keep_catalog else ())
            if not row.complete:
                raise FarloomError(f"the drain with dimensions {variant} did not store every "
                                   f"click: {row.note}")
            runs.append(DimensionRun(variant, row.clicks_per_s, row.complete,
                                     row.latency_p99_s, row.peak_rss_mb))
    return runs


def dimensions_markdown(runs: list[DimensionRun], context: str, count: int) -> str:
    """The "Ingest with dimensions" section: each variant's median drain and the ratio."""
    rates = {variant: [r.clicks_per_s for r in runs if r.variant == variant]
             for variant, _, _ in DIMENSION_VARIANTS}
    medians = {variant: lower_middle(values) for variant, values in rates.items()}
    off = medians["off"]
    lines = [context, "",
             f"Farloom's ingest worker (`farloom ingest --burst`, its defaults) drains {count:,} "
             f"preloaded messages of {DIMENSIONS_CLICKS_PER_MESSAGE} clicks, interleaved: "
             "**off** = the clicks without "
             + ", ".join(f"`{name}`" for name in NEW_FIELDS)
             + " (UUIDv4 ids, `user_id`, `ip` and `country` kept), **on** = the same clicks "
             "with them, the tables (the catalog `agg.ads` too) emptied first, so every ad's "
             "first click writes its catalog row, and **on, catalog already filled** = the "
             "same with `agg.ads` kept from the run before (the worker's own cache of known "
             "owners still starts empty). Rates are the worker's first-delivery-to-last-ack "
             "clicks/s; every click was durable in raw. Each figure is the median run (the "
             "lower middle for an even count), truncated.", "",
             "| variant | clicks/s (median) | runs | / off | target | met |",
             "|---|---:|---|---:|---|---|"]
    for variant, _, _ in DIMENSION_VARIANTS:
        ratio = medians[variant] / off if off else 0.0
        ratio_text = f"{math.floor(ratio * 100) / 100:.2f}x"
        target, met = ("", "") if variant == "off" else (
            f">= {DIMENSIONS_TARGET}x", "met" if ratio >= DIMENSIONS_TARGET else "**not met**")
        lines.append(f"| {variant} | {math.floor(medians[variant]):,} | "
                     + ", ".join(f"{math.floor(v):,}" for v in rates[variant])
                     + f" | {ratio_text} | {target} | {met} |")
    return "\n".join(lines)


def run_dimensions_only(options: IngestOptions, settings: Settings) -> int:
    """``--dimensions-compare``: only the drains with the new fields off and on."""
    sizes = _sizes(replace(options, clicks_per_message=(DIMENSIONS_CLICKS_PER_MESSAGE,)))
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    with isolated_bench_env(settings) as env:
        runs = run_dimensions(env, options, sizes)
    load_after = os.getloadavg()
    context = (f"Measured {started:%Y-%m-%d %H:%M} UTC with `farloom {options.command_line}`"
               f"{' (--quick: a smoke run, not a measurement)' if options.quick else ''}. "
               f"1-minute load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
               f"on {os.cpu_count()} cores (a machine shared with other work: the ratio, "
               "measured on interleaved runs, is steadier than the rates).")
    text = dimensions_markdown(runs, context, sizes.messages[DIMENSIONS_CLICKS_PER_MESSAGE])
    print(text)
    if options.report:
        options.report.write_text(orjson.dumps(
            {"dimension_runs": [asdict(r) for r in runs],
             "load_average": [load_before[0], load_after[0]]},
            option=orjson.OPT_INDENT_2).decode())
    if options.write_docs:
        report.write_section(DIMENSIONS_SECTION, "## Ingest with dimensions\n\n" + text,
                             options.docs)
        print(f"updated {options.docs}", file=sys.stderr)
    return 0


def run(options: IngestOptions, settings: Settings) -> int:
    """Run every planned scenario, print the Markdown report; 0 once it is written."""
    if options.dimensions_compare:
        return run_dimensions_only(options, settings)
    kinds = list(options.consumers)
    if unknown := set(kinds) - set(CONSUMER_KINDS):
        raise FarloomError(f"unknown consumers {sorted(unknown)}; choose from null,naive,farloom")
    if options.repeat < 1:
        raise FarloomError("--repeat must be at least 1")
    sizes = _sizes(options)
    runs = plan(sizes, options.mode, kinds, 1 if options.quick else options.repeat)
    rows: list[Row] = []
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    with isolated_bench_env(settings) as env:
        machine = describe_machine(env.settings)
        traffic = {cpm: Traffic(cpm, time.time(), click_ids=options.click_ids)
                   for cpm in sizes.messages}
        with tqdm(runs, desc="bench ingest", unit="run", file=sys.stderr) as bar:
            for mode, cpm, kind, rate in bar:
                bar.set_postfix_str(f"{mode} {cpm} click/msg {kind}"
                                    + (f" at {rate:,.0f}/s" if rate else ""))
                if mode == PRELOADED:
                    count = sizes.naive_messages[cpm] if kind == "naive" else sizes.messages[cpm]
                    cap = sizes.naive_cap if kind == "naive" else 600.0
                    rows.append(run_preloaded(env, kind, traffic[cpm], count, cap,
                                              sizes.idle_seconds))
                else:
                    rows.append(run_sustained(env, kind, traffic[cpm], rate, sizes))
    load_after = os.getloadavg()
    rows = report.combine_repeats(rows)
    found = report.targets(rows)
    context = (f"Measured {started:%Y-%m-%d %H:%M} UTC with `farloom {options.command_line}`"
               f"{' (--quick: a smoke run, not a measurement)' if options.quick else ''}. "
               f"1-minute load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
               f"on {os.cpu_count()} cores: figures from a shared machine are indicative only.")
    text = report.markdown(rows, found, context)
    print(text)
    if options.report:
        options.report.write_text(orjson.dumps(
            {"rows": [asdict(r) for r in rows], "targets": [asdict(t) for t in found],
             "machine": machine, "load_average": [load_before[0], load_after[0]]},
            option=orjson.OPT_INDENT_2).decode())
    if options.write_docs:
        document = options.docs.read_text() if options.docs.exists() else ""
        document = report.update_docs(document, report.machine_markdown(machine),
                                      "## Ingest\n\n" + text)
        options.docs.parent.mkdir(parents=True, exist_ok=True)
        options.docs.write_text(document)
        print(f"updated {options.docs}", file=sys.stderr)
    return 0
