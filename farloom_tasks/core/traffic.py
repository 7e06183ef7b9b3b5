"""Synthetic click traffic for ``farloom generate``. Pure: clock and randomness come in.

Ad popularity follows a Zipf-like law: the ad of rank r is clicked with weight
1 / r**s. Each generated click is one of four kinds:
- ``normal``: a new click_id, dated ``now``;
- ``duplicate``: an exact copy of a recent valid click (a client retry), which
  ingest must count once;
- ``late``: a new click dated minutes in the past, older than any grace period;
- ``invalid``: a contract violation (a rotating variety), which ingest
  dead-letters.

Every click carries every optional field, as a real ad server's do: a user id,
an IPv4 address, a country, a device, and the ad's campaign and advertiser,
which are consistent per ad (``owner_of``: ADS_PER_CAMPAIGN ads per campaign,
CAMPAIGNS_PER_ADVERTISER campaigns per advertiser), so that ingest never
rejects them as ``ad_owner_mismatch``.

The mix is scheduled rather than sampled: after n clicks each special kind
has been emitted floor(rate * n) times, give or take one click while two kinds
fall due together, and ``counts`` records exactly what was emitted, so a test
can check the queue against both.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

NORMAL, DUPLICATE, LATE, INVALID = "normal", "duplicate", "late", "invalid"
PPM = 1_000_000  # rates are kept in parts per million so the mix is exact integer arithmetic
RECENT_CLICKS = 1000  # valid clicks a duplicate may copy
USERS = 1_000_000  # distinct user ids clicks are spread over (uniformly)
ADS_PER_CAMPAIGN = 10
CAMPAIGNS_PER_ADVERTISER = 5
# Where the clicks come from: a spread of real ISO 3166-1 codes.
COUNTRIES = ("US", "IN", "BR", "ID", "DE", "FR", "GB", "JP", "MX", "NG", "PH", "VN", "TR",
             "EG", "IT", "ES", "KR", "CA", "PL", "AR")
# Devices and their shares of clicks (percent), roughly as display advertising sees them.
DEVICE_SHARES = (("mobile", 60), ("desktop", 30), ("tablet", 6), ("tv", 3), ("other", 1))
_DEVICES = tuple(device for device, _ in DEVICE_SHARES)
_DEVICE_WEIGHTS = list(itertools.accumulate(share for _, share in DEVICE_SHARES))


def owner_of(ad_number: int) -> tuple[str, str]:
    """The (campaign_id, advertiser_id) of the ad numbered ``ad_number``, the same on
    every run: ads 0-9 are campaign camp-0, campaigns 0-4 advertiser adv-0, and so on."""
    campaign = ad_number // ADS_PER_CAMPAIGN
    return f"camp-{campaign}", f"adv-{campaign // CAMPAIGNS_PER_ADVERTISER}"


def random_device(rng: random.Random) -> str:
    return rng.choices(_DEVICES, cum_weights=_DEVICE_WEIGHTS)[0]


def random_ipv4(rng: random.Random) -> str:
    """A public-looking unicast address (first octet 1-223), in canonical form."""
    return (f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}."
            f"{rng.randrange(1, 255)}")


def zipf_cumulative_weights(ads: int, s: float) -> list[float]:
    """Cumulative weights of ranks 1..ads under weight 1 / rank**s."""
    if ads < 1:
        raise ValueError("ads must be at least 1")
    return list(itertools.accumulate(1.0 / rank**s for rank in range(1, ads + 1)))


def rfc3339(epoch_seconds: float) -> str:
    """Epoch seconds to RFC 3339 UTC with milliseconds: 2026-11-29T14:03:07.123Z."""
    whole = int(epoch_seconds // 1)
    millis = int((epoch_seconds - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def _invalid_variants(click: dict[str, Any], now: float) -> list[Any]:
    """One click made invalid in each of the ways the contract forbids."""
    return [
        {k: v for k, v in click.items() if k != "click_id"},  # missing_field
        {**click, "click_id": ""},  # bad_length
        {**click, "click_id": "x" * 65},  # bad_length
        {**click, "ad_id": -1},  # bad_value
        {**click, "ad_id": True},  # wrong_type
        {**click, "ad_id": "ad\x07"},  # bad_characters
        {**click, "clicked_at": "yesterday"},  # bad_timestamp
        {**click, "clicked_at": rfc3339(now + 86_400)},  # future_timestamp
        {**click, "clicked_at": -5},  # bad_timestamp
        {**click, "ip": "999.1.1.1"},  # bad_value
        {**click, "country": "XX"},  # bad_value
        {**click, "device": "phone"},  # bad_value
        {**click, "campaign_id": ""},  # bad_length
        {**click, "advertiser_id": 7},  # wrong_type
        [click["click_id"]],  # not_object
    ]


@dataclass
class TrafficMix:
    duplicate_rate: float = 0.0
    late_rate: float = 0.0
    invalid_rate: float = 0.0
    late_min_seconds: float = 180.0  # s in the past; must exceed a minute plus the grace
    late_max_seconds: float = 900.0

    def validate(self) -> None:
        rates = (self.duplicate_rate, self.late_rate, self.invalid_rate)
        if any(rate < 0 or rate > 1 for rate in rates):
            raise ValueError("every rate must lie between 0 and 1")
        if sum(rates) > 1:
            raise ValueError("duplicate, late and invalid rates must add up to at most 1")
        if not 0 < self.late_min_seconds <= self.late_max_seconds:
            raise ValueError("late clicks need 0 < late_min_seconds <= late_max_seconds")


@dataclass
class TrafficGenerator:
    """Makes click dicts. ``run_prefix`` keeps click ids unique across runs."""

    run_prefix: str
    rng: random.Random
    ads: int = 10_000
    zipf_s: float = 1.1
    mix: TrafficMix = field(default_factory=TrafficMix)
    counts: Counter[str] = field(default_factory=Counter)  # clicks emitted per kind

    def __post_init__(self) -> None:
        self.mix.validate()
        self._cumulative = zipf_cumulative_weights(self.ads, self.zipf_s)
        self._ad_ids = [f"ad{rank}" for rank in range(1, self.ads + 1)]
        self._owners = {ad: owner_of(rank) for rank, ad in enumerate(self._ad_ids, start=1)}
        self._rates = {DUPLICATE: round(self.mix.duplicate_rate * PPM),
                       LATE: round(self.mix.late_rate * PPM),
                       INVALID: round(self.mix.invalid_rate * PPM)}
        self._index = 0
        self._serial = 0
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT_CLICKS)

    def clicks(self, n: int, now: float) -> list[Any]:
        """The next ``n`` clicks, dated around ``now`` (epoch seconds)."""
        ads = self.rng.choices(self._ad_ids, cum_weights=self._cumulative, k=n)
        stamp = rfc3339(now)
        return [self._one(ad_id, stamp, now) for ad_id in ads]

    def _kind(self) -> str:
        self._index += 1
        best, best_owed = NORMAL, PPM - 1
        for kind, rate in self._rates.items():
            owed = rate * self._index - self.counts[kind] * PPM
            if owed > best_owed:
                best, best_owed = kind, owed
        return best

    def _new(self, ad_id: str, stamp: str) -> dict[str, Any]:
        self._serial += 1
        rng = self.rng
        campaign_id, advertiser_id = self._owners[ad_id]
        return {"click_id": f"{self.run_prefix}-{self._serial}", "ad_id": ad_id,
                "clicked_at": stamp, "user_id": f"user-{rng.randrange(USERS)}",
                "ip": random_ipv4(rng), "country": rng.choice(COUNTRIES),
                "device": random_device(rng), "campaign_id": campaign_id,
                "advertiser_id": advertiser_id}

    def _one(self, ad_id: str, stamp: str, now: float) -> Any:
        kind = self._kind()
        if kind == DUPLICATE and not self._recent:
            kind = NORMAL  # nothing to repeat yet; the debt is paid on a later click
        self.counts[kind] += 1
        if kind == DUPLICATE:
            return dict(self.rng.choice(self._recent))
        if kind == INVALID:
            variants = _invalid_variants(self._new(ad_id, stamp), now)
            return self.rng.choice(variants)
        if kind == LATE:
            age = self.rng.uniform(self.mix.late_min_seconds, self.mix.late_max_seconds)
            click = self._new(ad_id, rfc3339(now - age))
        else:
            click = self._new(ad_id, stamp)
        self._recent.append(click)
        return click


class TokenBucket:
    """Paces generation at ``rate`` clicks/s on a monotonic clock passed in.

    Tokens accrue from a fixed start, not from the last call, so a slow turn
    is made up by the next one and the long-run rate does not drift. ``burst``
    caps the catch-up after a stall (e.g. a broker outage) in tokens.
    """

    def __init__(self, rate: float, now: float, burst: float | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self._start = now
        self._granted = 0.0

    def take(self, wanted: int, now: float) -> int | float:
        """How many of ``wanted`` may go now; if none, the seconds until one may."""
        earned = (now - self._start) * self.rate
        if earned - self._granted > self.burst:
            # After a long stall, forget all but one burst instead of flooding.
            self._granted = earned - self.burst
        available = int(earned - self._granted)
        if available <= 0:
            return (self._granted + 1 - earned) / self.rate
        grant = min(wanted, available)
        self._granted += grant
        return grant
