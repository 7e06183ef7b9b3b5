"""The benchmark's traffic: deterministic click messages, published paced or all at once.

Every run of a scenario publishes the same bodies (same seed, same click ids),
so the three consumers are measured on identical work; ``fields="without-new"``
sends the same clicks without the fields issue 13 added (``NEW_FIELDS``). The clicks look like a
real ad server's: a random UUIDv4 click id and every optional field (user_id,
ip, country, device, and the ad's campaign_id and advertiser_id, consistent per
ad as core.traffic.owner_of derives them). Random ids land all over the raw
primary-key index, where short sequential ones would all land at its right edge;
``click_ids="sequential"`` keeps those for comparison. Publishing goes through
Farloom's own confirming publisher, which stamps the publish-time header the
ingest worker measures latency from.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
from tqdm import tqdm

from farloom_tasks.bench.env import BenchEnv
from farloom_tasks.core.traffic import (
    COUNTRIES,
    USERS,
    owner_of,
    random_device,
    random_ipv4,
    zipf_cumulative_weights,
)
from farloom_tasks.stores import topology
from farloom_tasks.stores.click_publisher import ConfirmingPublisher
from farloom_tasks.stores.click_source import Outgoing

ADS = 10_000  # distinct ads in the benchmark's traffic (Zipf, s = 1)
CLICK_ID_KINDS = ("uuid4", "sequential")
# The fields issue 13 added to the click: a click "without dimensions" leaves them out
# (and so writes nothing to the ads catalog); every other field and value stays.
NEW_FIELDS = ("device", "campaign_id", "advertiser_id")
FIELDS_ALL, FIELDS_WITHOUT_NEW = "all", "without-new"


class Traffic:
    """Deterministic click messages: run k of a scenario sends the same bodies as run 1."""

    def __init__(self, clicks_per_message: int, base_time: float, seed: int = 7,
                 click_ids: str = "uuid4", fields: str = FIELDS_ALL) -> None:
        if click_ids not in CLICK_ID_KINDS:
            raise ValueError(f"click_ids must be one of {CLICK_ID_KINDS}, not {click_ids!r}")
        if fields not in (FIELDS_ALL, FIELDS_WITHOUT_NEW):
            raise ValueError(f"fields must be {FIELDS_ALL!r} or {FIELDS_WITHOUT_NEW!r}, "
                             f"not {fields!r}")
        self.fields = fields
        self.clicks_per_message = clicks_per_message
        self.base_time = base_time
        self.seed = seed
        self.click_ids = click_ids
        self.weights = zipf_cumulative_weights(ADS, 1.0)

    def bodies(self, count: int) -> Iterator[Outgoing]:
        rng = random.Random(self.seed)
        per = self.clicks_per_message
        ads = rng.choices(range(ADS), cum_weights=self.weights, k=count * per)
        owners = [owner_of(ad) for ad in range(ADS)]
        for i in range(count):
            clicks = []
            for j in range(per):
                ad = ads[i * per + j]
                campaign_id, advertiser_id = owners[ad]
                clicks.append({"click_id": self._click_id(rng, i, j), "ad_id": f"ad-{ad}",
                               "clicked_at": self.base_time - rng.random() * 50,
                               "user_id": f"user-{rng.randrange(USERS)}",
                               "ip": random_ipv4(rng), "country": rng.choice(COUNTRIES),
                               "device": random_device(rng), "campaign_id": campaign_id,
                               "advertiser_id": advertiser_id})
                if self.fields == FIELDS_WITHOUT_NEW:
                    # Drawn all the same, so both kinds of traffic share ids and values.
                    for name in NEW_FIELDS:
                        del clicks[-1][name]
            yield Outgoing(orjson.dumps(clicks[0] if len(clicks) == 1 else clicks), len(clicks))

    def _click_id(self, rng: random.Random, message: int, index: int) -> str:
        if self.click_ids == "sequential":
            return f"b{self.clicks_per_message}-{message}-{index}"
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))


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
    ConfirmingPublisher(env.settings.amqp_url, source, give_up_after=30.0,
                        queue_type=topology.QueueType.of(env.settings)).run()
    return time.monotonic() - started
