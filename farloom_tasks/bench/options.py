"""What each benchmark accepts: one frozen options dataclass per ``farloom bench`` part.

The command line (``farloom_tasks/cli/bench.py``) builds these from its flags and
takes its defaults from here, so a default is written once. This module is
light on purpose (no I/O library): the CLI imports it to build every parser
without importing any benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from farloom_tasks.bench.report import CONSUMER_LABELS, DOCS_PATH

CONSUMER_KINDS = tuple(CONSUMER_LABELS)  # ("null", "naive", "farloom"), the report's order
BASELINE_KINDS = ("naive", "null")
BOTH = "both"  # ingest mode: preloaded then sustained
BASELINE_TIME_CAP = 600.0  # s a baseline consumer runs at most


@dataclass(frozen=True)
class IngestOptions:
    """``farloom bench ingest``. A None size means the scenario's own default (see Sizes)."""

    messages: int | None = None  # preloaded messages for (a) and (c)
    naive_messages: int | None = None  # the naive consumer's smaller preload
    clicks_per_message: tuple[int, ...] = ()  # empty: both 1 and 100
    rates: tuple[float, ...] = ()  # sustained offered clicks/s; empty: the defaults
    duration: float | None = None  # s of publishing in each sustained run
    repeat: int = 3  # preloaded drains of (a) and (c); the median run counts
    mode: str = BOTH  # BOTH, report.PRELOADED or report.SUSTAINED
    consumers: tuple[str, ...] = CONSUMER_KINDS
    quick: bool = False  # tiny sizes: a smoke run of the harness
    click_ids: str = "uuid4"  # "uuid4" as ad servers send them, or "sequential" to compare
    # only Farloom's 100-click drains with issue 13's new fields off and on, interleaved
    dimensions_compare: bool = False
    write_docs: bool = False
    docs: Path = DOCS_PATH  # the Markdown file write_docs updates
    report: Path | None = None  # also write rows and targets as JSON here
    command_line: str = "bench ingest"  # how it was run, quoted in the report


@dataclass(frozen=True)
class AggregateOptions:
    """``farloom bench aggregate``: one minute of ``clicks`` clicks over ``ads`` ads."""

    clicks: int = 1_000_000
    ads: int = 100_000
    zipf: float = 1.0  # exponent of the clicks beyond one per ad
    seed: int = 1
    warmup: float = 20.0  # s between loading and the deadline, for the workers to start
    writers: int = 2  # aggregated writer processes side by side
    replays: int = 3  # replays from raw, one after the other; the median counts
    timeout: float = 300.0  # s to wait for each result before giving up
    logs: Path | None = None  # the workers' logs; None: a temporary directory
    write_docs: bool = False
    docs: Path = DOCS_PATH  # the Markdown file write_docs updates
    slice_runs: int = 2  # runs of the slice close alone, per state of the stored data
    history_minutes: int = 60  # earlier minutes loaded before the slice close is timed again
    history_clicks: int = 20_000  # clicks in each of those minutes
    report: Path | None = None  # also write the figures as JSON here
    command_line: str = "farloom bench aggregate"  # how it was run, quoted in the report


@dataclass(frozen=True)
class ApiOptions:
    """``farloom bench api``: GET /v1/ads/top over ``hours`` of minutes in agg."""

    hours: int = 24
    ads_per_minute: int = 3000
    universe: int = 50_000  # distinct ads overall
    requests: int = 300  # timed requests per 60-minute scenario
    seed: int = 7
    write_docs: bool = False


@dataclass(frozen=True)
class PublishOptions:
    """``farloom bench publish``: Farloom's confirming publisher against sync confirms."""

    messages: int = 300_000  # one-click messages Farloom's publisher sends, per run
    naive_messages: int = 20_000
    repeat: int = 3  # Farloom publisher runs; the median run counts
    write_docs: bool = False


TOPOLOGY_NAMES = ("single-classic", "cluster-classic", "single-quorum", "cluster-quorum")


@dataclass(frozen=True)
class TopologiesOptions:
    """``farloom bench topologies``: ingest and aggregation per Redis / queue topology."""

    topologies: tuple[str, ...] = TOPOLOGY_NAMES  # the first is the baseline when present
    # preloaded messages per drain, by clicks per message
    ingest_messages: dict[int, int] = field(default_factory=lambda: {1: 50_000, 100: 2_000})
    aggregate_clicks: int = 300_000  # clicks in the closed minute
    aggregate_ads: int = 30_000
    replays: int = 3  # replays from raw per round; their median counts
    warmup: float = 20.0  # s between loading and the deadline, for the workers to start
    rounds: int = 3  # each topology once per round; the median round counts
    click_ids: str = "uuid4"
    write_docs: bool = False
    command_line: str = "bench topologies"


@dataclass(frozen=True)
class BaselineOptions:
    """One baseline consumer subprocess of ``farloom bench ingest``."""

    kind: str  # one of BASELINE_KINDS
    expect_messages: int  # stop after acking this many messages
    time_cap: float = BASELINE_TIME_CAP  # s; stop after this long anyway


@dataclass(frozen=True)
class ScaleOptions:
    """``farloom bench scale``: ingest, its COPY ceiling, disk, a partition drop and long
    API windows, with ``rows`` older clicks in raw."""

    rows: int = 100_000_000  # older clicks loaded into raw (SQL, not the pipeline)
    load_rate: float = 10_000.0  # clicks/s the loaded hours hold: rows per hour partition / 3600
    messages: int = 3_000  # preloaded messages of 100 clicks per drain (and the ceiling's rows)
    repeat: int = 3  # drains (and ceiling runs) per table state; the median counts
    rate: float = 20_000.0  # clicks/s offered in the sustained runs (with and without a drop)
    duration: float = 20.0  # s of publishing in each sustained run
    minute_days: int = 7  # days of minutes in agg for the API windows
    rollup_days: int = 90  # days of hours and days in agg
    ads_per_minute: int = 3000
    universe: int = 50_000  # distinct ads overall
    requests: int = 100  # timed requests per API window (each window stops after a time cap)
    seed: int = 7
    write_docs: bool = False
    docs: Path = DOCS_PATH  # the Markdown file write_docs updates
    report: Path | None = None  # also write the figures as JSON here
    command_line: str = "bench scale"  # how it was run, quoted in the report
