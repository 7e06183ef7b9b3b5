"""``farloom write-aggregates``: the aggregated writer (workers/aggregate_writer.py)."""

from __future__ import annotations

import argparse

from farloom_tasks.settings import Settings
from workers import aggregate_writer


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.description = (
        "Consume per-minute results from the queue farloom.aggregates.writer and write "
        "them into agg.ad_clicks_per_minute, agg.top_ads and agg.minute_totals. Safe to "
        "run several side by side. Invalid messages go to farloom.aggregates.dead with "
        "their reason. Stops cleanly on SIGTERM."
    )
    parser.add_argument("--burst", action="store_true",
                        help="exit once the queue is empty instead of waiting for more")


def run(args: argparse.Namespace, settings: Settings) -> int:
    return aggregate_writer.run_writer(settings, burst=bool(args.burst))
