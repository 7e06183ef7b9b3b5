"""``farloom bench slice-options``' workload: one Zipf minute whose clicks carry dimensions.

The per-ad counts are ``farloom bench aggregate``'s (``aggregate_workload.make_workload``:
each ad once, the rest Zipf). Every click then gets a country out of 50 real codes,
skewed like real traffic (weight 1/rank**1.2, so the US alone is about a quarter), a
device out of five (mobile most), and its ad's campaign and advertiser (20 ads per
campaign, 10 campaigns per advertiser). ``expected`` counts every slice in Python,
the truth each candidate's output is checked against.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from farloom_tasks.bench.aggregate_workload import Workload, copy_raw, make_workload
from farloom_tasks.bench.env import BenchEnv
from farloom_tasks.core.dimensions import Slice

COUNTRIES = ("US", "IN", "BR", "ID", "DE", "GB", "FR", "JP", "MX", "PH", "VN", "TR", "NG",
             "EG", "IT", "ES", "KR", "CA", "PL", "AR", "TH", "PK", "BD", "RU", "UA", "CO",
             "ZA", "SA", "MY", "AU", "NL", "IR", "PE", "CL", "RO", "BE", "SE", "CZ", "PT",
             "GR", "HU", "AT", "CH", "IL", "DK", "FI", "NO", "IE", "NZ", "SG")
COUNTRY_SKEW = 1.2  # weight of the country of rank r: 1 / r**COUNTRY_SKEW
DEVICES = ("mobile", "desktop", "tablet", "tv", "other")
DEVICE_WEIGHTS = (0.55, 0.30, 0.09, 0.04, 0.02)
ADS_PER_CAMPAIGN = 20
CAMPAIGNS_PER_ADVERTISER = 10
ADVERTISER = "advertiser_id"  # the per-advertiser slice (top ads within each advertiser)
VALUE_SEPARATOR = "|"  # between a combination's values, e.g. "US|mobile"


@dataclass(frozen=True)
class SlicedMinute:
    workload: Workload  # the per-ad counts
    slices: tuple[Slice, ...]  # the configured dimensions
    # per click: (ad_id, country, device); in the order the rows are loaded
    clicks: list[tuple[str, str, str]]
    campaign_of: dict[str, str]
    advertiser_of: dict[str, str]

    @property
    def slice_names(self) -> list[str]:
        """The configured slices, then the per-advertiser one."""
        return [s.name for s in self.slices] + [ADVERTISER]

    def value_of(self, slice_name: str, ad: str, country: str, device: str) -> str:
        if slice_name == ADVERTISER:
            return self.advertiser_of[ad]
        fields = {"country": country, "device": device}
        return VALUE_SEPARATOR.join(fields[d] for d in slice_name.split("*"))


def make_sliced_minute(minute: int, clicks: int, ads: int, zipf: float, seed: int,
                       slices: Sequence[Slice]) -> SlicedMinute:
    workload = make_workload(minute, clicks, ads, zipf, seed)
    rng = random.Random(seed + 1)
    ad_of_click = [ad for ad, n in workload.counts.items() for _ in range(n)]
    rng.shuffle(ad_of_click)
    country_weights = [1.0 / rank**COUNTRY_SKEW for rank in range(1, len(COUNTRIES) + 1)]
    countries = rng.choices(COUNTRIES, weights=country_weights, k=len(ad_of_click))
    devices = rng.choices(DEVICES, weights=DEVICE_WEIGHTS, k=len(ad_of_click))
    ordered = sorted(workload.counts)
    campaign_of = {ad: f"cmp-{i // ADS_PER_CAMPAIGN:05d}" for i, ad in enumerate(ordered)}
    advertiser_of = {ad: f"adv-{i // (ADS_PER_CAMPAIGN * CAMPAIGNS_PER_ADVERTISER):04d}"
                     for i, ad in enumerate(ordered)}
    return SlicedMinute(workload, tuple(slices),
                        list(zip(ad_of_click, countries, devices, strict=True)),
                        campaign_of, advertiser_of)


@dataclass(frozen=True)
class Expected:
    """Every slice of the minute, counted in Python: (slice, value) -> {ad_id: clicks}."""

    per_value: dict[tuple[str, str], dict[str, int]]
    owners: dict[tuple[str, str], int]  # ("campaign" | "advertiser", id) -> clicks

    @property
    def rows(self) -> int:
        return sum(len(ads) for ads in self.per_value.values())


def expected(minute: SlicedMinute) -> Expected:
    counted: Counter[tuple[str, str, str]] = Counter()
    for name in minute.slice_names:
        counted.update((name, minute.value_of(name, ad, country, device), ad)
                       for ad, country, device in minute.clicks)
    per_value: dict[tuple[str, str], dict[str, int]] = {}
    for (name, value, ad), n in counted.items():
        per_value.setdefault((name, value), {})[ad] = n
    owners: Counter[tuple[str, str]] = Counter()
    for ad, n in minute.workload.counts.items():
        owners[("campaign", minute.campaign_of[ad])] += n
        owners[("advertiser", minute.advertiser_of[ad])] += n
    return Expected(per_value, dict(owners))


def _rows(minute: SlicedMinute) -> Iterator[str]:
    m = minute.workload.minute
    start = datetime.fromtimestamp(m, UTC)
    minute_text = start.strftime("%Y-%m-%d %H:%M:%S+00")
    prefix = start.strftime("%Y-%m-%d %H:%M")
    total = len(minute.clicks)
    for j, (ad, country, device) in enumerate(minute.clicks):
        millis = j * 60_000 // total
        yield (f"slice-{j}\t{ad}\t{prefix}:{millis // 1000:02d}.{millis % 1000:03d}+00\t"
               f"{minute_text}\t{country}\t{device}\t{minute.campaign_of[ad]}\t"
               f"{minute.advertiser_of[ad]}\n")


def load_raw(env: BenchEnv, minute: SlicedMinute) -> None:
    """COPY the minute's clicks, with every dimension and owner, into raw.ad_clicks."""
    copy_raw(env, [minute.workload.minute],
             ("click_id", "ad_id", "clicked_at", "minute", "country", "device", "campaign_id",
              "advertiser_id"), _rows(minute), len(minute.clicks))
