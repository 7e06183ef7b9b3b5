"""The benchmark's traffic: deterministic click messages, published paced or all at once.

Every run of a scenario publishes the same bodies (same seed, same click ids),
so the three consumers are measured on identical work. Publishing goes through
Farloom's own confirming publisher, which stamps the publish-time header the
ingest worker measures latency from.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import orjson
from tqdm import tqdm

from farloom_tasks.bench.env import BenchEnv
from farloom_tasks.core.traffic import zipf_cumulative_weights
from farloom_tasks.stores.click_publisher import ConfirmingPublisher
from farloom_tasks.stores.click_source import Outgoing

ADS = 10_000  # distinct ads in the benchmark's traffic (Zipf, s = 1)


class Traffic:
    """Deterministic click messages: run k of a scenario sends the same bodies as run 1."""

    def __init__(self, clicks_per_message: int, base_time: float, seed: int = 7) -> None:
        self.clicks_per_message = clicks_per_message
        self.base_time = base_time
        self.seed = seed
        self.weights = zipf_cumulative_weights(ADS, 1.0)

    def bodies(self, count: int) -> Iterator[Outgoing]:
        rng = random.Random(self.seed)
        ads = rng.choices(range(ADS), cum_weights=self.weights, k=count * self.clicks_per_message)
        for i in range(count):
            clicks = [{"click_id": f"b{self.clicks_per_message}-{i}-{j}",
                       "ad_id": f"ad-{ads[i * self.clicks_per_message + j]}",
                       "clicked_at": self.base_time - rng.random() * 50, "country": "FR"}
                      for j in range(self.clicks_per_message)]
            yield Outgoing(orjson.dumps(clicks[0] if len(clicks) == 1 else clicks), len(clicks))


class PacedSource:
    """A publisher Source sending ``count`` messages, at ``per_second`` if given."""

    def __init__(self, bodies: Iterator[Outgoing], count: int, per_second: float | None,
                 progress: tqdm[Any] | None = None) -> None:
        self.bodies, self.left, self.per_second = bodies, count, per_second
        self.sent = 0
        self.started: float | None = None
        self.progress = progress

    def take(self, limit: int, now: float) -> list[Outgoing] | float | None:
        if self.left <= 0:
            return None
        self.started = self.started if self.started is not None else now
        wanted = min(limit, self.left)
        if self.per_second is not None:
            due = int((now - self.started) * self.per_second) + 1 - self.sent
            if due <= 0:
                return self.sent / self.per_second - (now - self.started)  # next one is due
            wanted = min(wanted, due)
        taken = [next(self.bodies) for _ in range(wanted)]
        self.left -= wanted
        self.sent += wanted
        return taken

    def confirmed(self, messages: list[Outgoing]) -> None:
        if self.progress is not None:
            self.progress.update(len(messages))


def publish(env: BenchEnv, source: PacedSource) -> float:
    """Publish everything with confirms; returns the seconds it took."""
    started = time.monotonic()
    ConfirmingPublisher(env.settings.amqp_url, source, give_up_after=30.0).run()
    return time.monotonic() - started
