"""``farloom generate``: synthetic click traffic (workers/generate.py)."""

from __future__ import annotations

import argparse

from farloom_tasks.settings import Settings
from workers.generate import GenerateOptions, generate_traffic


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.description = (
        "Publish synthetic clicks (Zipf ad popularity, optional duplicate/late/invalid mix) "
        "to farloom.clicks with asynchronous publisher confirms, then print the confirmed "
        "messages/s.")
    parser.epilog = ("example: farloom generate --rate 2000 --duration 60 "
                     "--duplicate-rate 0.01 --invalid-rate 0.001")
    parser.add_argument("--count", type=int, default=None,
                        help="clicks to publish (default: unlimited unless --duration)")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds to generate for (default: until --count or Ctrl-C)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="target clicks/s; 0 = as fast as the broker confirms (default 0)")
    parser.add_argument("--ads", type=int, default=10_000,
                        help="distinct ads (default 10000)")
    parser.add_argument("--zipf-s", type=float, default=1.1,
                        help="Zipf exponent of ad popularity; 0 = uniform (default 1.1)")
    parser.add_argument("--clicks-per-message", type=int, default=1,
                        help="clicks per message; >1 publishes JSON arrays (default 1)")
    parser.add_argument("--duplicate-rate", type=float, default=0.0,
                        help="fraction of clicks that repeat a recent click_id (default 0)")
    parser.add_argument("--late-rate", type=float, default=0.0,
                        help="fraction dated 3-15 minutes ago, past the grace period (default 0)")
    parser.add_argument("--invalid-rate", type=float, default=0.0,
                        help="fraction violating the click contract in varied ways (default 0)")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed for a repeatable ad/kind sequence (ids stay unique)")
    parser.add_argument("--run-prefix", default=None,
                        help="click_id prefix (default: a fresh random one per run)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace, settings: Settings) -> int:
    options = GenerateOptions(
        count=args.count, duration=args.duration, rate=args.rate, ads=args.ads,
        zipf_s=args.zipf_s, clicks_per_message=args.clicks_per_message,
        duplicate_rate=args.duplicate_rate, late_rate=args.late_rate,
        invalid_rate=args.invalid_rate, seed=args.seed, run_prefix=args.run_prefix,
        progress=not args.no_progress)
    return generate_traffic(options, settings)
