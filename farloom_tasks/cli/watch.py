"""``farloom watch PATH...``: follow NDJSON click logs (workers/watch.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from farloom_tasks.settings import Settings
from workers.watch import WatchOptions, watch_logs


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.description = (
        "Follow NDJSON click logs like `tail -F` (rename rotation, copytruncate, files that "
        "appear later) and publish every line to farloom.clicks with publisher confirms. "
        "Positions are saved only once the broker confirmed the lines, so a restart "
        "neither skips nor re-sends a confirmed line.")
    parser.epilog = "example: farloom watch /var/log/adserver/clicks.log --clicks-per-message 200"
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="NDJSON log files to follow (they may not exist yet)")
    parser.add_argument("--state-file", type=Path, default=None,
                        help="JSON file of confirmed positions (default: "
                        "$FARLOOM_WATCH_STATE_DIR/watch-<hash of the paths>.json; the "
                        "directory defaults to ~/.local/state/farloom)")
    parser.add_argument("--clicks-per-message", type=int, default=100,
                        help="JSON-object lines batched into one message (default 100)")
    parser.add_argument("--poll-interval", type=float, default=0.2,
                        help="seconds between checks of idle files (default 0.2)")
    parser.add_argument("--rotate-linger", type=float, default=2.0,
                        help="seconds a rotated file is still read after it went idle "
                        "(default 2)")
    parser.add_argument("--state-interval", type=float, default=0.5,
                        help="at most this many seconds between state-file writes (default 0.5)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    options = WatchOptions(
        paths=tuple(args.paths), state_file=args.state_file,
        clicks_per_message=args.clicks_per_message, poll_interval=args.poll_interval,
        rotate_linger=args.rotate_linger, state_interval=args.state_interval)
    return watch_logs(options, settings)
