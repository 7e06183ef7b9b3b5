"""Publishing synthetic click traffic to ``farloom.clicks`` (``farloom generate``).

Clicks come from farloom_tasks.core.traffic (Zipf popularity, an exact
duplicate/late/invalid mix); the ConfirmingPublisher sends them with
asynchronous confirms. Paced runs (``--rate``) use a token bucket on the
monotonic clock. Ctrl-C or SIGTERM stops generating and waits for the
outstanding confirms, so the final figures are all confirmed clicks.
"""

from __future__ import annotations

import random
import sys
import time
import uuid
from dataclasses import dataclass

from tqdm import tqdm

from farloom_tasks import processes
from farloom_tasks.core.messages import encode_clicks
from farloom_tasks.core.traffic import TokenBucket, TrafficGenerator, TrafficMix
from farloom_tasks.settings import Settings
from farloom_tasks.stores.click_publisher import ConfirmingPublisher
from farloom_tasks.stores.click_source import Outgoing, PublishStats
from farloom_tasks.stores.queue_types import QueueType


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


@dataclass(frozen=True)
class GenerateOptions:
    """What to generate; every field is the ``farloom generate`` flag of the same name."""

    count: int | None = None  # clicks; None = unlimited unless ``duration``
    duration: float | None = None  # s; None = until ``count`` or a signal
    rate: float = 0.0  # clicks/s; 0 = as fast as the broker confirms
    ads: int = 10_000  # distinct ads
    zipf_s: float = 1.1  # Zipf exponent of ad popularity; 0 = uniform
    clicks_per_message: int = 1
    duplicate_rate: float = 0.0  # fractions of the clicks
    late_rate: float = 0.0
    invalid_rate: float = 0.0
    seed: int | None = None
    run_prefix: str | None = None  # click_id prefix; None = a fresh random one
    progress: bool = True  # show a progress bar on stderr


def generate_traffic(options: GenerateOptions, settings: Settings) -> int:
    """Publish until the count, the duration or SIGINT/SIGTERM; return the exit code.

    A signal stops generating and waits for the outstanding confirms, so the
    figures printed are all confirmed clicks. Invalid options print why and
    return 2.
    """
    if options.clicks_per_message < 1 or options.ads < 1 or options.rate < 0:
        print("farloom generate: --clicks-per-message and --ads must be >= 1, --rate >= 0",
              file=sys.stderr)
        return 2
    mix = TrafficMix(options.duplicate_rate, options.late_rate, options.invalid_rate,
                     late_min_seconds=120 + settings.grace_seconds + 60)
    try:
        generator = TrafficGenerator(options.run_prefix or f"g{uuid.uuid4().hex[:10]}",
                                     random.Random(options.seed), options.ads, options.zipf_s, mix)
    except ValueError as exc:
        print(f"farloom generate: {exc}", file=sys.stderr)
        return 2
    source = GeneratedTraffic(generator, clicks_per_message=options.clicks_per_message,
                              count=options.count, duration=options.duration, rate=options.rate,
                              started=time.monotonic())
    bar = tqdm(total=options.count, unit="click", file=sys.stderr, disable=not options.progress,
               dynamic_ncols=True)
    shown = [0]

    def progress(stats: PublishStats) -> None:
        bar.update(stats.clicks - shown[0])
        shown[0] = stats.clicks

    publisher = ConfirmingPublisher(settings.amqp_url, source,
                                    queue_type=QueueType.of(settings),
                                    window=settings.publish_window_messages,
                                    channels=settings.publish_channels,
                                    max_backoff=settings.reconnect_max_backoff_seconds,
                                    on_progress=progress)
    processes.on_stop_signals(lambda _signum: publisher.stop())
    try:
        stats = publisher.run()
    finally:
        bar.close()
    counts = generator.counts
    print(stats.summary())
    print(f"mix: {counts['normal']:,} normal, {counts['duplicate']:,} duplicates, "
          f"{counts['late']:,} late, {counts['invalid']:,} invalid")
    return 0
