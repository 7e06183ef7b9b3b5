"""``farloom generate``: publish synthetic click traffic to ``farloom.clicks``.

Clicks come from farloom_tasks.core.traffic (Zipf popularity, an exact
duplicate/late/invalid mix); the ConfirmingPublisher sends them with
asynchronous confirms. Paced runs (``--rate``) use a token bucket on the
monotonic clock. Ctrl-C or SIGTERM stops generating and waits for the
outstanding confirms, so the final figures are all confirmed clicks.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
import uuid
from typing import Any

from tqdm import tqdm

from farloom_tasks.core.messages import encode_clicks
from farloom_tasks.core.traffic import TokenBucket, TrafficGenerator, TrafficMix
from farloom_tasks.settings import Settings
from farloom_tasks.stores.click_publisher import ConfirmingPublisher, Outgoing, PublishStats


class GeneratedTraffic:
    """A publisher Source of synthetic clicks, bounded by count and/or duration."""

    def __init__(self, generator: TrafficGenerator, *, clicks_per_message: int,
                 count: int | None, duration: float | None, rate: float,
                 started: float) -> None:
        self.generator = generator
        self.clicks_per_message = clicks_per_message
        self.remaining = count
        self.deadline = None if duration is None else started + duration
        self.bucket = TokenBucket(rate, started) if rate > 0 else None

    def take(self, limit: int, now: float) -> list[Outgoing] | float | None:
        if self.remaining == 0 or (self.deadline is not None and now >= self.deadline):
            return None
        wanted = limit * self.clicks_per_message
        if self.remaining is not None:
            wanted = min(wanted, self.remaining)
        if self.bucket is not None:
            granted = self.bucket.take(wanted, now)
            if isinstance(granted, float):
                return granted if self.deadline is None else min(granted, self.deadline - now)
            wanted = granted
        clicks = self.generator.clicks(wanted, time.time())
        if self.remaining is not None:
            self.remaining -= wanted
        step = self.clicks_per_message
        return [Outgoing(encode_clicks(clicks[i:i + step]), len(clicks[i:i + step]))
                for i in range(0, len(clicks), step)]

    def confirmed(self, messages: list[Outgoing]) -> None:
        pass  # nothing to record: generated clicks have no position to keep


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
    if args.clicks_per_message < 1 or args.ads < 1 or args.rate < 0:
        print("farloom generate: --clicks-per-message and --ads must be >= 1, --rate >= 0",
              file=sys.stderr)
        return 2
    mix = TrafficMix(args.duplicate_rate, args.late_rate, args.invalid_rate,
                     late_min_seconds=120 + settings.grace_seconds + 60)
    try:
        generator = TrafficGenerator(args.run_prefix or f"g{uuid.uuid4().hex[:10]}",
                                     random.Random(args.seed), args.ads, args.zipf_s, mix)
    except ValueError as exc:
        print(f"farloom generate: {exc}", file=sys.stderr)
        return 2
    source = GeneratedTraffic(generator, clicks_per_message=args.clicks_per_message,
                              count=args.count, duration=args.duration, rate=args.rate,
                              started=time.monotonic())
    bar = tqdm(total=args.count, unit="click", file=sys.stderr, disable=args.no_progress,
               dynamic_ncols=True)
    shown = [0]

    def progress(stats: PublishStats) -> None:
        bar.update(stats.clicks - shown[0])
        shown[0] = stats.clicks

    publisher = ConfirmingPublisher(settings.amqp_url, source,
                                    window=settings.publish_window_messages,
                                    channels=settings.publish_channels,
                                    max_backoff=settings.reconnect_max_backoff_seconds,
                                    on_progress=progress)
    _stop_on_signals(publisher)
    try:
        stats = publisher.run()
    finally:
        bar.close()
    counts = generator.counts
    print(stats.summary())
    print(f"mix: {counts['normal']:,} normal, {counts['duplicate']:,} duplicates, "
          f"{counts['late']:,} late, {counts['invalid']:,} invalid")
    return 0


def _stop_on_signals(publisher: ConfirmingPublisher) -> None:
    def handler(signum: int, frame: Any) -> None:
        publisher.stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
