"""``farloom bench slice-options``' flags (options: ``slice_bench_options.py``); no I/O library.

``farloom_tasks/cli/bench.py`` registers the subcommand with ``add_arguments`` and
``run``; the benchmark itself (``bench/slice_options.py``) is imported only when it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from farloom_tasks.bench.slice_bench_options import QUICK, SliceBenchOptions
from farloom_tasks.errors import FarloomError
from farloom_tasks.settings import Settings

HELP = ("where slice counts are made: PostgreSQL at close (rows or compact arrays) against "
        "Redis at ingest, on one minute of clicks with dimensions, side by side")


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument("--clicks", type=int, default=defaults.clicks)
    parser.add_argument("--ads", type=int, default=defaults.ads)
    parser.add_argument("--zipf", type=float, default=defaults.zipf)
    parser.add_argument("--seed", type=int, default=defaults.seed)
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
    parser.add_argument("--write-docs", action="store_true",
                        help="write the 'Where slices are made' section of the docs")
    parser.add_argument("--docs", type=Path, default=defaults.docs, metavar="PATH")
    parser.add_argument("--report", type=Path, default=None, metavar="PATH",
                        help="also write every round's figures as JSON to PATH")


def options_from(args: argparse.Namespace) -> SliceBenchOptions:
    if args.rounds < 1 or args.requests < 1 or not 1 <= args.read_minutes <= 60:
        raise FarloomError("--rounds and --requests must be at least 1, --read-minutes 1 to 60")
    sized = QUICK if args.quick else SliceBenchOptions(
        clicks=args.clicks, ads=args.ads, rounds=args.rounds, read_minutes=args.read_minutes,
        requests=args.requests, ingest_messages=args.ingest_messages)
    return SliceBenchOptions(
        clicks=sized.clicks, ads=sized.ads, zipf=args.zipf, seed=args.seed,
        dimensions=args.dimensions, rounds=sized.rounds, read_minutes=sized.read_minutes,
        requests=sized.requests, ingest_messages=sized.ingest_messages,
        write_docs=args.write_docs, docs=args.docs, report=args.report,
        command_line=" ".join(["farloom", *sys.argv[1:]]))


def run(args: argparse.Namespace, settings: Settings) -> int:
    from farloom_tasks.bench import slice_options

    return slice_options.run(options_from(args), settings)
