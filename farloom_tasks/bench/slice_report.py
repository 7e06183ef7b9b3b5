"""``farloom bench slice-options``' figures per round and the Markdown report of them.

Every figure is the median over the rounds (the slower middle for an even count,
``report.slower_middle``), with each round's value beside it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from farloom_tasks.bench.report import slower_middle
from farloom_tasks.bench.slice_bench_options import SliceBenchOptions
from farloom_tasks.bench.slice_checks import Reads, Truth, Written
from farloom_tasks.bench.slice_redis import IngestCost
from farloom_tasks.bench.slice_workload import SlicedMinute
from farloom_tasks.settings import Settings

CLOSE_LABELS = {
    "rows": "(a) PostgreSQL at close, rows + top k + hour rollup",
    "rows_without_hour": "(a) the same without the hour rollup",
    "compact": "(b) PostgreSQL at close, compact arrays",
    "redis_rows": "(c) Redis at ingest, close: sets read back, written as (a) rows + hour",
    "redis_compact": "(c) Redis at ingest, close: sets read back, written as (b) arrays",
}
SLICE_BUDGET = 2.0  # s after the deadline by which every slice must be committed
TOP_BUDGET = 1.0  # s after the deadline for the top 100
READ_BUDGET = 0.2  # s, p99 of the top-100 read
INGEST_RATIO = 0.8  # ingest with dimensions on, at least this times ingest with them off


@dataclass
class Round:
    ingest_clicks_per_s: float | None = None  # the real worker's drain, dimensions off
    group_by_ad: float = 0.0  # s of the raw GROUP BY by ad alone
    per_ad_close: float = 0.0  # s of the PostgreSQL-only per-ad close
    close: dict[str, float] = field(default_factory=dict)  # candidate -> s start to commit
    # candidate -> (its s, the per-ad close's s), the two started together
    contended: dict[str, tuple[float, float]] = field(default_factory=dict)
    written: dict[str, Written] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)  # candidate -> bytes on disk
    ingest: dict[bool, IngestCost] = field(default_factory=dict)  # slices on? -> cost
    redis_bytes: dict[bool, int] = field(default_factory=dict)  # Redis memory grown
    reads: Reads | None = None
    load_average: float = 0.0

    def extra_per_click(self, clicks: int) -> float:
        """s per click that ingest pays more with slices on (this harness's steps)."""
        return (self.ingest[True].seconds - self.ingest[False].seconds) / clicks

    def as_json(self) -> dict[str, Any]:
        return {
            "ingest_clicks_per_s": self.ingest_clicks_per_s, "group_by_ad_s": self.group_by_ad,
            "per_ad_close_s": self.per_ad_close, "close_s": self.close,
            "contended_s": self.contended,
            "written_rows": {k: w.rows for k, w in self.written.items()},
            "bytes": self.bytes,
            "ingest_s": {("on" if on else "off"): vars(c) for on, c in self.ingest.items()},
            "redis_bytes": {("on" if on else "off"): b for on, b in self.redis_bytes.items()},
            "reads_s": self.reads.latencies if self.reads else {},
            "load_average": self.load_average,
        }


def _figure(rounds: Sequence[Round], value: Callable[[Round], float], fmt: str) -> str:
    return _listed([value(r) for r in rounds], fmt)


def _listed(values: Sequence[float], fmt: str = ".3f") -> str:
    every = ", ".join(format(v, fmt) for v in values)
    return f"{format(slower_middle(values), fmt)} ({every})"


def _verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def markdown(rounds: Sequence[Round], minute: SlicedMinute, truth: Truth,
             options: SliceBenchOptions, settings: Settings, started: datetime) -> str:
    clicks = len(minute.clicks)
    values = len(truth.counts.per_value)
    loads = ", ".join(f"{r.load_average:.2f}" for r in rounds)
    lines = [
        f"Measured {started:%Y-%m-%d %H:%M} UTC with `{options.command_line}`, "
        f"{len(rounds)} interleaved round(s); each figure is the median, every round in "
        f"brackets. The machine ({os.cpu_count()} cores) was shared with other engineers' "
        f"test runs: 1-minute load average at the end of each round {loads}.",
        "",
        f"Workload: {clicks:,} clicks in one minute over {len(minute.workload.counts):,} ads "
        f"(one each, the rest Zipf {options.zipf:g}); slices {', '.join(minute.slice_names)} "
        f"(advertiser_id: the top ads within each advertiser) = {values:,} (slice, value) "
        f"pairs and {truth.counts.rows:,} (slice, value, ad) counts; plus "
        f"{len(truth.counts.owners):,} campaign and advertiser totals. "
        f"{settings.shard_count} shards, top {settings.top_k}, ingest batches of "
        f"{settings.batch_size:,} clicks (20 messages of 100). Every layout was checked exact "
        "against counts made in Python before its figure was kept.",
        "",
        "**Closing the minute** (seconds from the start of the work to its commit, as if it "
        "started at the deadline; the close tick adds up to "
        f"{settings.close_tick_seconds:g} s):",
        "",
        "| candidate | s to committed | rows written | bytes on disk |",
        "|---|---:|---:|---:|",
        "| baseline: the raw GROUP BY by ad alone | "
        f"{_figure(rounds, lambda r: r.group_by_ad, '.3f')} | | |",
        f"| baseline: today's per-ad close in PostgreSQL alone (per-ad rows, top k, totals) | "
        f"{_figure(rounds, lambda r: r.per_ad_close, '.3f')} | | |",
    ]
    last = rounds[-1]
    for name, label in CLOSE_LABELS.items():
        lines.append(f"| {label} | {_listed([r.close[name] for r in rounds])} | "
                     f"{last.written[name].rows:,} | {last.bytes[name]:,} |")
    lines += [
        "",
        "**Beside the per-ad close**: the slice statement and today's per-ad close in "
        "PostgreSQL alone started together (the real pipeline's per-ad close keeps both "
        "cores busy for longer: `bench aggregate`), seconds to each one's commit:",
        "",
        "| candidate | slices, s | per-ad close beside it, s |",
        "|---|---:|---:|",
    ]
    for name in rounds[0].contended:
        lines.append(f"| {CLOSE_LABELS[name]} | "
                     f"{_listed([r.contended[name][0] for r in rounds])} | "
                     f"{_listed([r.contended[name][1] for r in rounds])} |")
    on = [r.ingest[True] for r in rounds]
    off = [r.ingest[False] for r in rounds]
    lines += [
        "",
        "**Ingest's hot path** over the whole minute (every batch: grouping, the outbox "
        "INSERT, the apply script), dimensions off and on:",
        "",
        "| step | off | on |",
        "|---|---:|---:|",
    ]
    for step in ("group", "outbox", "redis", "seconds"):
        label = {"group": "grouping (Python), s", "outbox": "outbox INSERT, s",
                 "redis": "apply script pipeline, s", "seconds": "total, s"}[step]
        lines.append(f"| {label} | {_median(off, step)} | {_median(on, step)} |")
    lines.append(f"| outbox JSON, bytes | {off[-1].outbox_bytes:,} | {on[-1].outbox_bytes:,} |")
    lines.append(f"| Redis memory grown, bytes | {last.redis_bytes[False]:,} | "
                 f"{last.redis_bytes[True]:,} |")
    extra = slower_middle([r.extra_per_click(clicks) for r in rounds])
    lines += ["", f"Extra per click with dimensions on: {extra * 1e6:.2f} µs."]
    drained = [r.ingest_clicks_per_s for r in rounds if r.ingest_clicks_per_s]
    ratio = None
    if drained:
        rate = slower_middle(drained)
        ratio = (1 / rate) / (1 / rate + extra)
        lines.append(
            f"The real ingest worker drained {options.ingest_messages:,} messages of 100 "
            f"clicks, dimensions off, at {rate:,.0f} clicks/s (rounds: "
            f"{', '.join(f'{d:,.0f}' for d in drained)}). Adding the extra per click to its "
            f"time per click, serially (no overlap assumed): {ratio:.3f}x with dimensions on, "
            f"a projection, not a drain with dimensions on (ingest does not have them yet).")
    reads = [r.reads for r in rounds if r.reads is not None]
    lines += [
        "",
        f"**Reads**: the top {settings.top_k} of country=US over {options.read_minutes} "
        f"minutes, the SQL alone on one connection (no HTTP), {options.requests} requests "
        "per read per round. The read tables hold the minute's US rows copied into "
        f"{options.read_minutes} minutes (the same ads each minute, so a real hour, with "
        "more distinct ads, reads more), and the other values' rows are left out: the key "
        "starts with (slice, value), so a read touches only its value's range.",
        "",
        "| read | p50 s | p99 s (all rounds' requests) | p99 per round |",
        "|---|---:|---:|---|",
    ]
    for name in reads[0].latencies if reads else ():
        pooled = Reads({name: [x for r in reads for x in r.latencies[name]]})
        lines.append(f"| {name} | {pooled.percentile(name, 0.5):.3f} | "
                     f"{pooled.percentile(name, 0.99):.3f} | "
                     f"{', '.join(f'{r.percentile(name, 0.99):.3f}' for r in reads)} |")
    lines += ["", "**Targets on this machine** (medians):", ""]
    for name, label in CLOSE_LABELS.items():
        seconds = slower_middle([r.close[name] for r in rounds])
        lines.append(f"- every slice committed within {SLICE_BUDGET:g} s, {label}: "
                     f"{seconds:.3f} s, {_verdict(seconds <= SLICE_BUDGET)} (alone, without "
                     "the per-ad close sharing the cores)")
    for name in rounds[0].contended:
        seconds = slower_middle([r.contended[name][0] for r in rounds])
        per_ad = slower_middle([r.contended[name][1] for r in rounds])
        lines.append(f"- beside the per-ad close, {CLOSE_LABELS[name]}: slices {seconds:.3f} s "
                     f"({_verdict(seconds <= SLICE_BUDGET)} for {SLICE_BUDGET:g} s), the "
                     f"per-ad close {per_ad:.3f} s (its top {settings.top_k} is in the same "
                     f"transaction: {_verdict(per_ad <= TOP_BUDGET)} for {TOP_BUDGET:g} s)")
    if ratio is not None:
        lines.append(f"- ingest with dimensions on >= {INGEST_RATIO}x off, (c): {ratio:.3f}x "
                     f"(projected), {_verdict(ratio >= INGEST_RATIO)}; (a) and (b) add nothing "
                     "to ingest: 1x")
    for name in reads[0].latencies if reads else ():
        pooled = Reads({name: [x for r in reads for x in r.latencies[name]]})
        p99 = pooled.percentile(name, 0.99)
        lines.append(f"- top-100 read p99 < {READ_BUDGET * 1000:.0f} ms, {name}: "
                     f"{p99 * 1000:.1f} ms, {_verdict(p99 < READ_BUDGET)}")
    return "\n".join(lines)


def _median(costs: Sequence[IngestCost], step: str) -> str:
    values = [float(getattr(c, step)) for c in costs]
    return f"{slower_middle(values):.3f} ({', '.join(f'{v:.3f}' for v in values)})"
