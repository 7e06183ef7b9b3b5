"""``farloom bench``: the benchmarks' command line, one subcommand per benchmark.

- ``ingest``: the ingest worker against two baseline consumers;
- ``aggregate``: closing minutes with the top-k chord;
- ``api``: the query API;
- ``publish``: the confirming click publisher against synchronous confirms;
- ``scale``: ingest with a large raw table against a bare COPY, bytes per click,
  a partition drop under load and the top 100 over 24 hours to 30 days;
- ``topologies``: ingest and aggregation on a single Redis and a Redis Cluster,
  with classic and quorum queues;
- ``slice-options``: where slice counts are made, PostgreSQL at close or Redis at
  ingest.

Every flag is defined here and turned into the benchmark's frozen options
(``farloom_tasks.bench.options``, whose defaults the flags show); the benchmark
module itself is imported only when its subcommand runs, so ``farloom bench
--help`` imports none of them. This module and the benchmarks are the only
code that imports ``farloom_tasks.bench``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from farloom_tasks.bench.api_slice_options import SliceApiOptions
from farloom_tasks.bench.options import (
    BASELINE_KINDS,
    BASELINE_TIME_CAP,
    BOTH,
    CONSUMER_KINDS,
    AggregateOptions,
    ApiOptions,
    BaselineOptions,
    IngestOptions,
    PublishOptions,
    ScaleOptions,
    TopologiesOptions,
)
from farloom_tasks.bench.report import DOCS_PATH, PRELOADED, SUSTAINED
from farloom_tasks.bench.slice_bench_options import QUICK as SLICE_QUICK
from farloom_tasks.bench.slice_bench_options import SliceBenchOptions
from farloom_tasks.errors import FarloomError
from farloom_tasks.settings import Settings

# The subcommand `farloom bench ingest` starts each baseline consumer with; not
# listed in --help (it is the harness's, not a benchmark).
BASELINE_COMMAND = "baseline-consumer"
# Benchmark-only libraries (the [bench] extra), named in the hint when one is missing.
BENCH_EXTRA = frozenset({"psutil"})


@dataclass(frozen=True)
class Part:
    help: str | None  # None: a hidden subcommand
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, Settings], int]


def _minute_arguments(parser: argparse.ArgumentParser, clicks: int, ads: int, zipf: float,
                      seed: int) -> None:
    """--clicks, --ads, --zipf, --seed: the one Zipf minute of ``aggregate`` and
    ``slice-options`` (bench/aggregate_workload.py makes it for both)."""
    parser.add_argument("--clicks", type=int, default=clicks,
                        help="clicks in the minute (default %(default)s)")
    parser.add_argument("--ads", type=int, default=ads,
                        help="distinct ads in the minute (default %(default)s)")
    parser.add_argument("--zipf", type=float, default=zipf,
                        help="Zipf exponent of the clicks beyond one per ad (default %(default)s)")
    parser.add_argument("--seed", type=int, default=seed,
                        help="workload random seed (default %(default)s)")


def _output_arguments(parser: argparse.ArgumentParser, docs: Path, writes: str) -> None:
    """--write-docs, --docs and --report, alike for every benchmark that has them."""
    parser.add_argument("--write-docs", action="store_true", help=f"write {writes} of --docs")
    parser.add_argument("--docs", type=Path, default=docs, metavar="PATH",
                        help="the Markdown file --write-docs updates (default %(default)s)")
    parser.add_argument("--report", type=Path, default=None, metavar="PATH",
                        help="also write the figures as JSON to PATH")


def _ingest_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = IngestOptions()
    parser.description = (
        "Measure Farloom's ingest worker against a null consumer (decode + ack) and a naive "
        "one (prefetch 1, one INSERT+commit and one ZINCRBY per click), on identical "
        "messages, preloaded and at a sustained rate. Runs in a throw-away database, Redis db "
        "and vhost on the configured servers. The default run takes about 5 minutes.")
    parser.add_argument("--messages", type=int, default=defaults.messages, metavar="N",
                        help="messages to preload per scenario for (a) and (c) "
                             "(default: 100,000 at 1 click/msg, 3,000 at 100)")
    parser.add_argument("--naive-messages", type=int, default=defaults.naive_messages,
                        metavar="N",
                        help="the naive consumer's smaller preload (default: 2,000 at 1 "
                             "click/msg, 20 at 100); it also stops at a 30 s cap")
    parser.add_argument("--clicks-per-message", type=int, action="append", default=None,
                        metavar="K", help="clicks in each message; repeatable "
                                          "(default: both 1 and 100)")
    parser.add_argument("--rate", type=float, action="append", default=None, metavar="CLICKS/S",
                        help="sustained publishing rate, repeatable (default: 5,000 and "
                             "12,000 clicks/s at 1 click/msg, 60,000 at 100)")
    parser.add_argument("--duration", type=float, default=defaults.duration, metavar="S",
                        help="seconds of publishing in each sustained run (default 15)")
    parser.add_argument("--repeat", type=int, default=defaults.repeat, metavar="N",
                        help="run each preloaded drain of (a) and (c) N times, interleaved, "
                             "and report the median run (default 3; single runs swing on "
                             "a shared machine: docs/benchmarks.md)")
    parser.add_argument("--mode", choices=(BOTH, PRELOADED, SUSTAINED), default=defaults.mode,
                        help="which scenarios to run (default both)")
    parser.add_argument("--consumers", default=",".join(defaults.consumers),
                        help=f"comma-separated subset of {','.join(CONSUMER_KINDS)} "
                             "(default all)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: a smoke run of the harness, not a measurement")
    parser.add_argument("--click-ids", choices=("uuid4", "sequential"),
                        default=defaults.click_ids,
                        help="random UUIDv4 click ids, as ad servers send them (default), or "
                             "short sequential ones, which land at the right edge of the "
                             "raw index (for comparison)")
    parser.add_argument("--dimensions-compare", action="store_true",
                        help="instead: only Farloom's drains of 100-click messages with the "
                             "fields device, campaign_id and advertiser_id off and on, "
                             "interleaved --repeat times, and their ratio")
    _output_arguments(parser, defaults.docs, "the machine and Ingest sections (with "
                      "--dimensions-compare: its Ingest with dimensions section)")


def ingest_options(args: argparse.Namespace) -> IngestOptions:
    return IngestOptions(
        messages=args.messages, naive_messages=args.naive_messages,
        clicks_per_message=tuple(args.clicks_per_message or ()), rates=tuple(args.rate or ()),
        duration=args.duration, repeat=args.repeat, mode=args.mode,
        consumers=tuple(k.strip() for k in args.consumers.split(",") if k.strip()),
        quick=args.quick, click_ids=args.click_ids,
        dimensions_compare=args.dimensions_compare, write_docs=args.write_docs,
        docs=args.docs, report=args.report, command_line=" ".join(sys.argv[1:]))


def _run_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from farloom_tasks.bench import ingest

    return ingest.run(ingest_options(args), settings)


def _aggregate_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = AggregateOptions()
    parser.description = (
        "Close one minute of --clicks clicks over --ads ads, every click with every optional "
        "field, with the real pipeline (Celery chord, aggregated writer, the slice task) and "
        "with PostgreSQL alone, after a baseline minute closed without slice work; replay it "
        "from raw; time the slice close alone before and after --history-minutes of earlier "
        "minutes. Reports delays after the deadline, replay throughput and the slices' "
        "targets. Runs in its own throw-away database, Redis db and vhost.")
    _minute_arguments(parser, defaults.clicks, defaults.ads, defaults.zipf, defaults.seed)
    parser.add_argument("--warmup", type=float, default=defaults.warmup,
                        help="seconds between loading and the deadline, for the workers "
                             "to start (default 20)")
    parser.add_argument("--writers", type=int, default=defaults.writers,
                        help="aggregated writer processes side by side (default 2)")
    parser.add_argument("--replays", type=int, default=defaults.replays,
                        help="replays from raw of the closed minute, one after the other; "
                             "the median counts (default 3)")
    parser.add_argument("--timeout", type=float, default=defaults.timeout,
                        help="seconds to wait for each result before giving up (default 300)")
    parser.add_argument("--logs", type=Path, default=defaults.logs,
                        help="directory for the workers' logs (default: a temporary one, "
                             "removed at the end)")
    parser.add_argument("--slice-runs", type=int, default=defaults.slice_runs,
                        help="runs of the slice close alone, before and after the history "
                             "(default %(default)s)")
    parser.add_argument("--history-minutes", type=int, default=defaults.history_minutes,
                        help="earlier minutes loaded (by SQL) before the slice close alone is "
                             "timed again; 0 skips it (default %(default)s)")
    parser.add_argument("--history-clicks", type=int, default=defaults.history_clicks,
                        help="clicks in each of those minutes (default %(default)s)")
    _output_arguments(parser, defaults.docs, "the Aggregation and Slices at close sections")


def aggregate_options(args: argparse.Namespace) -> AggregateOptions:
    return AggregateOptions(
        clicks=args.clicks, ads=args.ads, zipf=args.zipf, seed=args.seed, warmup=args.warmup,
        writers=args.writers, replays=args.replays, timeout=args.timeout, logs=args.logs,
        write_docs=args.write_docs, docs=args.docs, slice_runs=args.slice_runs,
        history_minutes=args.history_minutes, history_clicks=args.history_clicks,
        report=args.report, command_line=" ".join(["farloom", *sys.argv[1:]]))


def _run_aggregate(args: argparse.Namespace, settings: Settings) -> int:
    from farloom_tasks.bench import aggregate

    return aggregate.run(aggregate_options(args), settings)


def _api_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ApiOptions()
    parser.add_argument("--hours", type=int, default=defaults.hours,
                        help="hours of minutes to fill")
    parser.add_argument("--ads-per-minute", type=int, default=defaults.ads_per_minute,
                        help="distinct ads in each minute (default: 3000)")
    parser.add_argument("--universe", type=int, default=defaults.universe,
                        help="distinct ads overall (default: 50000)")
    parser.add_argument("--requests", type=int, default=defaults.requests,
                        help="timed requests per 60-minute scenario (default: 300)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--write-docs", action="store_true",
                        help="write the api section of docs/benchmarks.md (with --slices: "
                             "its Filtered reads section)")
    # The slice scenario (bench/api_slices.py): the filtered top against the unfiltered one.
    sliced = SliceApiOptions()
    parser.add_argument("--slices", action="store_true",
                        help="time GET /v1/ads/top?country=US against the unfiltered top "
                             "over slice data as the close writes it, instead")
    parser.add_argument("--slice-minutes", type=int, default=sliced.minutes,
                        help="minutes of slice data (default %(default)s: a whole hour and "
                             "30 minutes of the next)")
    parser.add_argument("--slice-clicks", type=int, default=sliced.clicks,
                        help="clicks in each minute (default %(default)s)")
    parser.add_argument("--slice-ads", type=int, default=sliced.ads,
                        help="ads in each minute (default %(default)s)")
    parser.add_argument("--slice-templates", type=int, default=sliced.templates,
                        help="distinct minutes made and cycled (default %(default)s)")
    parser.add_argument("--slice-requests", type=int, default=sliced.requests,
                        help="timed requests per slice scenario (default %(default)s)")
    parser.add_argument("--slice-docs", type=Path, default=sliced.docs, metavar="PATH",
                        help="the Markdown file --slices --write-docs updates "
                             "(default %(default)s)")


def api_options(args: argparse.Namespace) -> ApiOptions:
    return ApiOptions(
        hours=args.hours, ads_per_minute=args.ads_per_minute, universe=args.universe,
        requests=args.requests, seed=args.seed, write_docs=args.write_docs)


def slice_api_options(args: argparse.Namespace) -> SliceApiOptions:
    return SliceApiOptions(
        minutes=args.slice_minutes, clicks=args.slice_clicks, ads=args.slice_ads,
        templates=args.slice_templates, requests=args.slice_requests, seed=args.seed,
        write_docs=args.write_docs, docs=args.slice_docs)


def _run_api(args: argparse.Namespace, settings: Settings) -> int:
    if args.slices:
        from farloom_tasks.bench import api_slices

        return api_slices.run(slice_api_options(args), settings)
    from farloom_tasks.bench import api

    return api.run(api_options(args), settings)


def _publish_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = PublishOptions()
    parser.add_argument("--messages", type=int, default=defaults.messages,
                        help="one-click messages Farloom's publisher sends (default 300,000)")
    parser.add_argument("--naive-messages", type=int, default=defaults.naive_messages,
                        help="messages the naive publisher sends (default 20,000)")
    parser.add_argument("--repeat", type=int, default=defaults.repeat, metavar="N",
                        help="Farloom publisher runs; the median run counts (default 3)")
    parser.add_argument("--write-docs", action="store_true",
                        help="write the publish section of docs/benchmarks.md")


def publish_options(args: argparse.Namespace) -> PublishOptions:
    return PublishOptions(
        messages=args.messages, naive_messages=args.naive_messages, repeat=args.repeat,
        write_docs=args.write_docs)


def _run_publish(args: argparse.Namespace, settings: Settings) -> int:
    from farloom_tasks.bench import publish

    return publish.run(publish_options(args), settings)


def _scale_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = ScaleOptions()
    parser.description = (
        "In one throw-away database, Redis db and vhost: Farloom's ingest (preloaded "
        "drains of 100-click messages) into an empty raw table and with --rows older clicks "
        "loaded by SQL, against a bare COPY of the same clicks in batches of the worker's "
        "batch size; bytes on disk per click; ingest p99 latency with and without a "
        "partition drop; GET /v1/ads/top?n=100 over 24 hours, 7 days and 30 days. The full "
        "size needs about 30 GB of disk for PostgreSQL and runs for an hour or more.")
    parser.add_argument("--rows", type=int, default=defaults.rows, metavar="N",
                        help="older clicks loaded into raw (default 100,000,000)")
    parser.add_argument("--load-rate", type=float, default=defaults.load_rate,
                        metavar="CLICKS/S",
                        help="clicks/s each loaded hour partition holds (default 10,000: "
                             "36,000,000 rows an hour)")
    parser.add_argument("--messages", type=int, default=defaults.messages, metavar="N",
                        help="100-click messages per drain, also the ceiling's clicks "
                             "(default 3,000)")
    parser.add_argument("--repeat", type=int, default=defaults.repeat, metavar="N",
                        help="drains per table state and ceiling runs; the median counts "
                             "(default 3)")
    parser.add_argument("--rate", type=float, default=defaults.rate, metavar="CLICKS/S",
                        help="offered clicks/s of the sustained runs (default 20,000)")
    parser.add_argument("--duration", type=float, default=defaults.duration, metavar="S",
                        help="seconds of publishing in each sustained run (default 20)")
    parser.add_argument("--minute-days", type=int, default=defaults.minute_days, metavar="D",
                        help="days of minutes in agg for the API (default 7)")
    parser.add_argument("--rollup-days", type=int, default=defaults.rollup_days, metavar="D",
                        help="days of hour and day rollups in agg (default 90)")
    parser.add_argument("--ads-per-minute", type=int, default=defaults.ads_per_minute,
                        help="distinct ads in each minute (default 3,000)")
    parser.add_argument("--universe", type=int, default=defaults.universe,
                        help="distinct ads overall (default 50,000)")
    parser.add_argument("--requests", type=int, default=defaults.requests, metavar="N",
                        help="timed requests per API window (default 100; each window "
                             "also stops after 60 s)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    _output_arguments(parser, defaults.docs, "the machine and Scale sections")


def scale_options(args: argparse.Namespace) -> ScaleOptions:
    return ScaleOptions(
        rows=args.rows, load_rate=args.load_rate, messages=args.messages, repeat=args.repeat,
        rate=args.rate, duration=args.duration, minute_days=args.minute_days,
        rollup_days=args.rollup_days, ads_per_minute=args.ads_per_minute,
        universe=args.universe, requests=args.requests, seed=args.seed,
        write_docs=args.write_docs, docs=args.docs, report=args.report,
        command_line=" ".join(sys.argv[1:]))


def _run_scale(args: argparse.Namespace, settings: Settings) -> int:
    from farloom_tasks.bench import scale

    return scale.run(scale_options(args), settings)


def _baseline_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("A baseline consumer for `farloom bench ingest` "
                          "(prints JSON figures).")
    parser.add_argument("kind", choices=BASELINE_KINDS)
    parser.add_argument("--expect-messages", type=int, required=True,
                        help="stop after acking this many messages")
    parser.add_argument("--time-cap", type=float, default=BASELINE_TIME_CAP,
                        help="stop after this many seconds (default 600)")


def baseline_options(args: argparse.Namespace) -> BaselineOptions:
    return BaselineOptions(args.kind, args.expect_messages, args.time_cap)


def _topologies_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TopologiesOptions()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Farloom's ingest drain and one closed and replayed minute, on a single Redis and\n"
        "on a three-master Redis Cluster it starts on this machine, with classic and\n"
        "quorum queues, interleaved round by round; single-classic is the baseline.\n"
        "Runs against a single FARLOOM_REDIS_URL, in throw-away databases, Redis dbs\n"
        "and vhosts. The default run takes about 15 minutes.")
    parser.add_argument("--topologies", default=",".join(defaults.topologies),
                        help="comma-separated subset of " + ", ".join(defaults.topologies)
                        + " (default: all)")
    parser.add_argument("--ingest-messages", default=",".join(
        f"{cpm}:{n}" for cpm, n in defaults.ingest_messages.items()),
        help="clicks-per-message:messages pairs of the preloaded drains (default: "
             "%(default)s)")
    parser.add_argument("--aggregate-clicks", type=int, default=defaults.aggregate_clicks,
                        help="clicks in the closed minute (default: %(default)s)")
    parser.add_argument("--aggregate-ads", type=int, default=defaults.aggregate_ads,
                        help="distinct ads in the closed minute (default: %(default)s)")
    parser.add_argument("--replays", type=int, default=defaults.replays,
                        help="replays from raw per round (default: %(default)s)")
    parser.add_argument("--warmup", type=float, default=defaults.warmup,
                        help="seconds between loading and the deadline (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=defaults.rounds,
                        help="rounds; each runs every topology once (default: %(default)s)")
    parser.add_argument("--write-docs", action="store_true",
                        help=f"write the results into {DOCS_PATH.parent.name}/{DOCS_PATH.name}")


def topologies_options(args: argparse.Namespace) -> TopologiesOptions:
    try:
        messages = {int(cpm): int(n) for cpm, n in
                    (pair.split(":") for pair in args.ingest_messages.split(",") if pair)}
    except ValueError:
        raise FarloomError(f"--ingest-messages {args.ingest_messages!r}: expected pairs like "
                           "1:50000,100:2000") from None
    if args.rounds < 1 or args.replays < 1:
        raise FarloomError("--rounds and --replays must be at least 1")
    return TopologiesOptions(
        topologies=tuple(name.strip() for name in args.topologies.split(",") if name.strip()),
        ingest_messages=messages, aggregate_clicks=args.aggregate_clicks,
        aggregate_ads=args.aggregate_ads, replays=args.replays, warmup=args.warmup,
        rounds=args.rounds, write_docs=args.write_docs,
        command_line=" ".join(sys.argv[1:]))


def _run_topologies(args: argparse.Namespace, settings: Settings) -> int:
    from farloom_tasks.bench import topologies

    return topologies.run(topologies_options(args), settings)


def _slice_options_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = SliceBenchOptions()
    parser.description = (
        "On one minute of --clicks clicks over --ads ads, each with a country (50, skewed), "
        "a device (5), a campaign and an advertiser, measure in one run, --rounds times "
        "interleaved: (a) PostgreSQL at close writing rows per (minute, slice, value, ad), "
        "(b) the same writing ranked arrays per (minute, slice, value), (c) Redis at ingest "
        "(the extra apply-script work per batch, then the close reading the sets back into "
        "(a) or (b)), the per-ad baseline, a real ingest drain, and the top 100 of "
        "country=US over --read-minutes minutes. Runs in a throw-away database, Redis db and "
        "vhost. The default run takes a few minutes.")
    _minute_arguments(parser, defaults.clicks, defaults.ads, defaults.zipf, defaults.seed)
    parser.add_argument("--dimensions", default=defaults.dimensions,
                        help="slices, as FARLOOM_DIMENSIONS (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=defaults.rounds,
                        help="interleaved rounds (default %(default)s)")
    parser.add_argument("--read-minutes", type=int, default=defaults.read_minutes,
                        help="minutes the top-100 reads cover (default %(default)s)")
    parser.add_argument("--requests", type=int, default=defaults.requests,
                        help="timed requests per read per round (default %(default)s)")
    parser.add_argument("--ingest-messages", type=int, default=defaults.ingest_messages,
                        help="100-click messages of the real ingest drain per round "
                             "(default %(default)s; 0 skips it)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and one round: a smoke run, not a measurement")
    _output_arguments(parser, defaults.docs, "the Where slices are made section")


def slice_options_options(args: argparse.Namespace) -> SliceBenchOptions:
    if args.rounds < 1 or args.requests < 1 or not 1 <= args.read_minutes <= 60:
        raise FarloomError("--rounds and --requests must be at least 1, --read-minutes 1 to 60")
    sized = SLICE_QUICK if args.quick else SliceBenchOptions(
        clicks=args.clicks, ads=args.ads, rounds=args.rounds, read_minutes=args.read_minutes,
        requests=args.requests, ingest_messages=args.ingest_messages)
    return SliceBenchOptions(
        clicks=sized.clicks, ads=sized.ads, zipf=args.zipf, seed=args.seed,
        dimensions=args.dimensions, rounds=sized.rounds, read_minutes=sized.read_minutes,
        requests=sized.requests, ingest_messages=sized.ingest_messages,
        write_docs=args.write_docs, docs=args.docs, report=args.report,
        command_line=" ".join(["farloom", *sys.argv[1:]]))


def _run_slice_options(args: argparse.Namespace, settings: Settings) -> int:
    from farloom_tasks.bench import slice_options

    return slice_options.run(slice_options_options(args), settings)


def _run_baseline(args: argparse.Namespace, settings: Settings) -> int:
    from farloom_tasks.bench import baselines

    return baselines.run(baseline_options(args), settings)


PARTS: dict[str, Part] = {
    "ingest": Part("ingest worker vs. a null and a naive consumer: clicks/s, RSS, latency",
                   _ingest_arguments, _run_ingest),
    "aggregate": Part("closing minutes: per-shard top-k chord and merge",
                      _aggregate_arguments, _run_aggregate),
    "api": Part("the query API: requests/s and latency", _api_arguments, _run_api),
    "publish": Part("the log watcher's confirming publisher vs. synchronous confirms: "
                    "messages/s", _publish_arguments, _run_publish),
    "scale": Part("ingest at 100M raw rows vs. a bare COPY, bytes per click, a partition "
                  "drop under load, top 100 over 24 h to 30 days", _scale_arguments, _run_scale),
    "topologies": Part("single Redis vs. a three-master Redis Cluster, classic vs. quorum "
                       "queues: ingest, closing and replay side by side",
                       _topologies_arguments, _run_topologies),
    "slice-options": Part("where slice counts are made: PostgreSQL at close (rows or compact "
                          "arrays) against Redis at ingest, on one minute of clicks with "
                          "dimensions, side by side", _slice_options_arguments,
                          _run_slice_options),
    BASELINE_COMMAND: Part(None, _baseline_arguments, _run_baseline),
}


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    for part_name, part in PARTS.items():
        if part.help is None:  # without help= argparse leaves it out of the listing
            part.add_arguments(sub.add_parser(part_name))
        else:
            part.add_arguments(sub.add_parser(part_name, help=part.help,
                                              description=part.help))


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return PARTS[args.bench].run(args, settings)
    except ModuleNotFoundError as exc:
        if exc.name not in BENCH_EXTRA:
            raise
        raise FarloomError(f"{exc.name} is missing: the benchmarks need the bench extra "
                           "(pip install -e '.[bench]', or make bench)") from exc
