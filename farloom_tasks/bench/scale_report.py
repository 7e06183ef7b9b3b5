"""``farloom bench scale``'s figures, its targets met or not, and its Markdown section (pure).

Targets are judged on the measured figures as they are (bench/report.py): a
figure just under a target is "not met".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from farloom_tasks.bench.report import Target, middle_run

SECTION = "scale"
AT_N_OVER_EMPTY = 0.9  # ingest at N rows against ingest into an empty raw table
OVER_CEILING = 0.7  # ingest against the bare COPY ceiling, empty and at N rows
PEAK_CLICKS_PER_S = 50_000  # Xu's peak
WINDOW_TARGET_SECONDS = 0.2  # p99 of the top 100 over 30 days
JUDGED_WINDOW = "30 days"
# The API windows timed, label -> minutes.
WINDOWS = {"24 hours": 1440, "7 days": 7 * 1440, "30 days": 30 * 1440}


@dataclass
class Sustained:
    """One sustained run at the offered rate (100 clicks per message)."""

    label: str  # "without a drop" or "while a partition drop runs"
    offered_clicks_per_s: float
    clicks_per_s: float
    complete: bool
    kept_up: bool
    latency_p50_s: float | None
    latency_p99_s: float | None
    drop_seconds: float | None = None  # detach + drop, when one ran
    dropped_rows: int | None = None
    dropped_partition: str = ""


@dataclass
class ApiWindow:
    label: str
    minutes: int
    requests: int
    p50_s: float | None = None
    p99_s: float | None = None
    worst_s: float | None = None
    refused: str = ""  # the API's answer when it refused the window


@dataclass
class ScaleFigures:
    rows_loaded: int
    partitions_loaded: int
    load_rate: float  # clicks/s per loaded hour
    load_seconds: float  # the whole load: inserts, index builds, VACUUM ANALYZE
    clicks_per_drain: int
    batch_size: int  # clicks per COPY of the ceiling (the ingest worker's batch size)
    empty_rates: list[float] = field(default_factory=list)  # Farloom drains, empty raw
    loaded_rates: list[float] = field(default_factory=list)  # Farloom drains, N rows in raw
    ceiling_rates: list[float] = field(default_factory=list)  # bare COPY runs
    complete: bool = True  # every drain stored every click
    checkpointed: bool = True  # a CHECKPOINT ran before the empty drains and after loading
    raw_bytes: int = 0  # the loaded partitions, with their indexes
    raw_heap_bytes: int = 0
    raw_index_bytes: int = 0
    sustained: list[Sustained] = field(default_factory=list)
    api: list[ApiWindow] = field(default_factory=list)
    api_rows: dict[str, int] = field(default_factory=dict)  # table -> rows loaded
    api_load_seconds: float = 0.0


def median_rate(rates: Sequence[float]) -> float:
    """The median of repeated rates; for an even count the lower middle (never flatters)."""
    return middle_run(rates, lambda rate: -rate) if rates else 0.0


def _down(value: float, digits: int = 0) -> float:
    scale = 10.0**digits
    return math.floor(value * scale) / scale


def _rate(value: float) -> str:
    return f"{_down(value):,.0f} clicks/s"


def _ms(value: float | None) -> str:
    """Seconds as milliseconds, rounded up to 0.1 ms (a latency is never shown shorter)."""
    return "" if value is None else f"{math.ceil(round(value * 10_000, 6)) / 10:.1f}"


def bytes_per_click(figures: ScaleFigures) -> float:
    return figures.raw_bytes / figures.rows_loaded if figures.rows_loaded else 0.0


def targets(figures: ScaleFigures) -> list[Target]:
    empty, loaded = median_rate(figures.empty_rates), median_rate(figures.loaded_rates)
    ceiling = median_rate(figures.ceiling_rates)
    rows = f"{figures.rows_loaded:,}"
    found: list[Target] = []
    if empty > 0 and figures.loaded_rates:
        found.append(Target(f"ingest at {rows} rows >= {AT_N_OVER_EMPTY}x empty",
                            f"{_down(loaded / empty, 2):.2f}x", loaded >= AT_N_OVER_EMPTY * empty))
    if ceiling > 0:
        for label, rate in (("empty", empty), (f"at {rows} rows", loaded)):
            found.append(Target(f"ingest {label} >= {OVER_CEILING}x the COPY ceiling",
                                f"{_down(rate / ceiling, 2):.2f}x",
                                rate >= OVER_CEILING * ceiling))
    found.append(Target(f"Xu's peak, {PEAK_CLICKS_PER_S:,} clicks/s, reached (at {rows} rows)",
                        f"{_rate(loaded)} ({_rate(empty)} empty)",
                        loaded >= PEAK_CLICKS_PER_S))
    for window in figures.api:
        if window.label == JUDGED_WINDOW:
            p99 = window.p99_s
            found.append(Target(
                f"top 100 over {JUDGED_WINDOW}: p99 < {WINDOW_TARGET_SECONDS * 1000:.0f} ms",
                window.refused or f"{_ms(p99)} ms",
                not window.refused and p99 is not None and p99 < WINDOW_TARGET_SECONDS))
    return found


METHOD = """\
How it is measured (`farloom bench scale`, `farloom_tasks/bench/scale.py`), in one throw-away
database, Redis db and vhost:

- **Ingest**: the real worker (`farloom ingest --burst`) drains preloaded messages of 100
  realistic clicks (UUIDv4 ids, `user_id`, `ip`, `country`: `farloom bench ingest`'s traffic and
  harness); clicks/s is its own first-delivery-to-last-ack rate, the median of `--repeat`
  drains. First into an empty raw table, then with the older rows loaded, which stay in
  place between drains (only the benchmark's own hour is emptied).
- **Older rows**: loaded with SQL (`INSERT ... SELECT` from `generate_series`), never through
  the pipeline, into whole hour partitions made by `raw.ensure_partition` before the
  benchmark traffic's hour, `--load-rate` clicks/s worth of each hour (the oldest hour holds
  the remainder): random UUIDv4 ids (`gen_random_uuid`), an ad out of 10,000 (about
  Zipf), a user out of 1,000,000, a public IPv4 address and a country out of 20. Each
  partition's unique index on `click_id` is built after its rows (as
  `raw.ensure_partition` defines it), then the partition is vacuumed and analyzed, as
  autovacuum would have done long before in a live install.
- **Ceiling**: the same clicks as one drain, as COPY text made beforehand, sent with
  `COPY` in batches of the worker's batch size with a commit each, into an empty
  unpartitioned table of raw's columns and indexes (unique `click_id`, `(minute, ad_id)`);
  the median of `--repeat` runs, interleaved with the empty-table drains.
- A `CHECKPOINT` runs before the first drains and after loading, so that no drain is
  timed while PostgreSQL writes out what loading left in memory.
- **Bytes per click**: `pg_total_relation_size` (heap, TOAST and indexes) of the loaded
  partitions over their rows.
- **Partition drop**: two sustained runs at the same offered rate with the rows loaded;
  in the second, the oldest loaded partition is dropped while the publisher runs, as
  retention drops one (`pipeline/retention.py`'s `drop_partition`: `DETACH PARTITION ...
  CONCURRENTLY`, then `DROP TABLE`, the ledger marked). Latency is publish to durable,
  from the worker's summary, over the whole run.
- **API**: `GET /v1/ads/top?n=100` through HTTP against `farloom serve` (read-only role,
  sequential requests) over the windows ending at the last closed minute, with
  `--minute-days` of minutes (`--ads-per-minute` ads a minute out of `--universe`, skewed,
  the set rotating every 10 minutes) and `--rollup-days` of hour and day rollups, loaded
  with SQL into agg (the hours the minutes cover are their sums; older hours follow the
  same pattern, and the days are the sums of their hours). Each window stops after its
  requests or a time cap.
- Figures are truncated, never rounded up, before they are compared with a target."""


def markdown(figures: ScaleFigures, found: Sequence[Target], context: str) -> str:
    empty, loaded = median_rate(figures.empty_rates), median_rate(figures.loaded_rates)
    ceiling = median_rate(figures.ceiling_rates)
    rows = figures.rows_loaded

    def runs(rates: Sequence[float]) -> str:
        return ", ".join(f"{_down(r):,.0f}" for r in rates)

    lines = [
        "## Scale", "", context, "", METHOD, "",
        f"Loaded {rows:,} older clicks into {figures.partitions_loaded} hour partitions "
        f"({figures.load_rate:,.0f} clicks/s per hour) in {figures.load_seconds:,.0f} s: "
        f"{_down(rows / max(figures.load_seconds, 1e-9)):,.0f} rows/s, index builds and "
        "VACUUM ANALYZE included."
        + ("" if figures.checkpointed else " **The database user may not run CHECKPOINT: the "
           "drains after loading may have shared the disk with writing the load out.**"),
        "",
        f"| ingest, 100 clicks/msg, {figures.clicks_per_drain:,} clicks per drain | clicks/s "
        "(median) | runs | / ceiling |",
        "|---|---:|---|---:|",
        f"| bare COPY ceiling ({figures.batch_size:,} rows per COPY + commit, empty table) "
        f"| {_down(ceiling):,.0f} | {runs(figures.ceiling_rates)} | |",
    ]
    for label, rate, rates in (("Farloom, empty raw table", empty, figures.empty_rates),
                               (f"Farloom, {rows:,} rows in raw", loaded,
                                figures.loaded_rates)):
        share = f"{_down(rate / ceiling, 2):.2f}x" if ceiling > 0 else ""
        lines.append(f"| {label} | {_down(rate):,.0f} | {runs(rates)} | {share} |")
    if not figures.complete:
        lines.append("")
        lines.append("**A drain did not store every click; its rate proves little.**")
    per_click = bytes_per_click(figures)
    heap = figures.raw_heap_bytes / rows if rows else 0.0
    lines += [
        "",
        f"Bytes on disk per stored click (raw, {rows:,} rows): **{per_click:,.1f}** "
        f"({heap:,.1f} heap and TOAST, {(figures.raw_index_bytes / rows if rows else 0):,.1f} "
        f"indexes; {figures.raw_bytes / 2**30:,.2f} GiB in all).",
        "",
        "| sustained, 100 clicks/msg | offered clicks/s | clicks/s | kept up | all stored "
        "| p50 ms | p99 ms | the drop |",
        "|---|---:|---:|---|---|---:|---:|---|",
    ]
    for run in figures.sustained:
        drop = "" if run.drop_seconds is None else (
            f"{run.dropped_partition} ({run.dropped_rows or 0:,} rows) detached and dropped "
            f"in {run.drop_seconds:.2f} s")
        lines.append(
            f"| {run.label} | {run.offered_clicks_per_s:,.0f} | {_down(run.clicks_per_s):,.0f} "
            f"| {'yes' if run.kept_up else 'no'} | {'yes' if run.complete else 'no'} "
            f"| {_ms(run.latency_p50_s)} | {_ms(run.latency_p99_s)} | {drop} |")
    loaded_api = ", ".join(f"{count:,} rows of {table}"
                           for table, count in figures.api_rows.items())
    lines += [
        "",
        f"API data: {loaded_api}, loaded in {figures.api_load_seconds:,.0f} s.",
        "",
        "| GET /v1/ads/top?n=100 over | requests | p50 ms | p99 ms | worst ms | note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for window in figures.api:
        lines.append(f"| {window.label} | {window.requests} | {_ms(window.p50_s)} "
                     f"| {_ms(window.p99_s)} | {_ms(window.worst_s)} | {window.refused} |")
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t.name} | {t.measured} | {'met' if t.met else '**not met**'} |" for t in found]
    return "\n".join(lines)
