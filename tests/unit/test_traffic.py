"""The pure traffic core: Zipf popularity, the click mix, and pacing."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from farloom_tasks.core.clicks import Click, Rejection, validate_click
from farloom_tasks.core.traffic import (
    TokenBucket,
    TrafficGenerator,
    TrafficMix,
    owner_of,
    rfc3339,
    zipf_cumulative_weights,
)

NOW = 1_795_000_000.0


def _generator(**mix: float) -> TrafficGenerator:
    return TrafficGenerator("run", random.Random(3), ads=1000, mix=TrafficMix(**mix))


def test_each_kind_of_click_is_what_it_claims_to_be() -> None:
    generator = _generator(duplicate_rate=0.1, late_rate=0.05, invalid_rate=0.05)
    elements = generator.clicks(10_000, NOW)

    results = [validate_click(element, NOW, 300.0) for element in elements]
    valid = [r for r in results if isinstance(r, Click)]
    rejected = [r for r in results if isinstance(r, Rejection)]
    counts = generator.counts
    assert len(rejected) == counts["invalid"]
    assert len({r.code for r in rejected}) >= 6
    ids = Counter(click.click_id for click in valid)
    assert sum(ids.values()) - len(ids) == counts["duplicate"]
    assert len({c.click_id for c in valid if c.clicked_at <= NOW - 180}) == counts["late"]
    assert counts["normal"] + counts["duplicate"] + counts["late"] + counts["invalid"] == 10_000


@pytest.mark.parametrize("n", [1000, 3000, 9999])
def test_the_mix_follows_the_requested_rates_within_one_click(n: int) -> None:
    generator = _generator(duplicate_rate=0.1, late_rate=0.03, invalid_rate=0.07)
    generator.clicks(n, NOW)
    for kind, rate in (("duplicate", 0.1), ("late", 0.03), ("invalid", 0.07)):
        assert abs(generator.counts[kind] - int(rate * n)) <= 1, kind


def test_click_ids_are_unique_within_a_run_and_carry_the_run_prefix() -> None:
    generator = TrafficGenerator("gabc", random.Random(1), ads=10)
    ids = [click["click_id"] for click in generator.clicks(5000, NOW)]
    assert len(set(ids)) == 5000
    assert all(click_id.startswith("gabc-") for click_id in ids)


def test_popular_ads_follow_a_zipf_law() -> None:
    generator = TrafficGenerator("z", random.Random(5), ads=1000, zipf_s=1.0)
    counts = Counter(click["ad_id"] for click in generator.clicks(50_000, NOW))
    # Under s = 1 rank 1 gets twice rank 2 and ten times rank 10 (in expectation).
    assert 1.6 < counts["ad1"] / counts["ad2"] < 2.4
    assert 7 < counts["ad1"] / counts["ad10"] < 13
    weights = zipf_cumulative_weights(3, 2.0)
    assert weights == pytest.approx([1.0, 1.25, 1.25 + 1 / 9])


def test_the_same_seed_repeats_the_ads() -> None:
    first = TrafficGenerator("a", random.Random(9), ads=500).clicks(200, NOW)
    second = TrafficGenerator("b", random.Random(9), ads=500).clicks(200, NOW)
    assert [c["ad_id"] for c in first] == [c["ad_id"] for c in second]


def test_rates_that_add_up_to_more_than_one_are_refused() -> None:
    with pytest.raises(ValueError, match="at most 1"):
        _generator(duplicate_rate=0.6, invalid_rate=0.5)


def test_rfc3339_keeps_milliseconds_in_utc() -> None:
    assert rfc3339(0.25) == "1970-01-01T00:00:00.250Z"
    assert rfc3339(1_510_047_000.999) == "2017-11-07T09:30:00.999Z"


def test_the_token_bucket_holds_its_rate_without_drift() -> None:
    bucket = TokenBucket(rate=1000.0, now=0.0)
    clock, granted = 0.0, 0
    jitter = random.Random(2)
    while clock < 100.0:
        clock += jitter.uniform(0.0001, 0.02)  # irregular turns, as in an event loop
        result = bucket.take(50, clock)
        if isinstance(result, int):
            granted += result
    # Whatever the turn lengths, the total tracks rate * elapsed, not a sum of rounding errors.
    assert abs(granted - 1000.0 * clock) <= 50


def test_an_empty_bucket_says_how_long_to_wait() -> None:
    bucket = TokenBucket(rate=10.0, now=0.0)
    assert bucket.take(100, 1.0) == 10
    wait = bucket.take(1, 1.0)
    assert isinstance(wait, float)
    assert wait == pytest.approx(0.1)


def test_after_a_stall_the_bucket_releases_at_most_one_burst() -> None:
    bucket = TokenBucket(rate=100.0, now=0.0, burst=100.0)
    assert bucket.take(10_000, 60.0) == 100
    assert isinstance(bucket.take(1, 60.0), float)


def test_every_valid_click_names_every_optional_field_and_its_ads_one_owner() -> None:
    generator = _generator(duplicate_rate=0.1, late_rate=0.05)
    clicks = [validate_click(e, NOW, 300.0) for e in generator.clicks(5000, NOW)]
    assert all(isinstance(c, Click) for c in clicks)
    owners: dict[str, set[tuple[str | None, str | None]]] = {}
    for click in clicks:
        assert isinstance(click, Click)
        assert None not in (click.user_id, click.ip, click.country, click.device)
        owners.setdefault(click.ad_id, set()).add((click.campaign_id, click.advertiser_id))
    assert all(len(named) == 1 for named in owners.values())
    assert len({c.device for c in clicks if isinstance(c, Click)}) == 5


def test_owners_follow_ten_ads_a_campaign_and_five_campaigns_an_advertiser() -> None:
    assert [owner_of(n) for n in (0, 9, 10, 49, 50)] == [
        ("camp-0", "adv-0"), ("camp-0", "adv-0"), ("camp-1", "adv-0"), ("camp-4", "adv-0"),
        ("camp-5", "adv-1")]
