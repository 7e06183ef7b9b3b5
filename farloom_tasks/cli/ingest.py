"""``farloom ingest``: the ingest worker (workers/ingest.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from farloom_tasks.settings import Settings
from workers import ingest


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.description = (
        "Consume click messages from the queue farloom.clicks.ingest into raw.ad_clicks "
        "and the per-minute Redis sets, exactly once: every click id is stored and counted "
        "once however often it is delivered. Invalid clicks go to farloom.clicks.dead with "
        "their reason. Safe to run several side by side. SIGTERM flushes, acks and exits 0."
    )
    parser.add_argument("--burst", action="store_true",
                        help="drain the queue, then exit and print a JSON summary line "
                             "(messages, clicks, duplicates, dead letters, late clicks, "
                             "clicks_per_s, publish-to-durable latency, peak RSS)")
    parser.add_argument("--idle-seconds", type=float, default=1.0, metavar="S",
                        help="with --burst: exit after S seconds without a delivery once the "
                             "queue is empty (default: 1.0)")
    parser.add_argument("--stats-file", type=Path, default=None, metavar="PATH",
                        help="on exit, also write the JSON summary to PATH")


def run(args: argparse.Namespace, settings: Settings) -> int:
    options = ingest.IngestOptions(burst=bool(args.burst),
                                   idle_seconds=float(args.idle_seconds),
                                   stats_file=args.stats_file)
    return ingest.run(options, settings)
