"""The benchmark's traffic: identical bodies on every run, and a publisher source that paces."""

from __future__ import annotations

import uuid

import orjson
import pytest

from farloom_tasks.bench.traffic import NEW_FIELDS, PacedSource, Traffic
from farloom_tasks.core.messages import decode_message


def test_every_run_of_a_scenario_publishes_the_same_bodies() -> None:
    first = [m.body for m in Traffic(100, 1_800_000_000.0).bodies(20)]
    again = [m.body for m in Traffic(100, 1_800_000_000.0).bodies(20)]
    assert first == again


def test_bodies_are_valid_clicks_with_unique_ids() -> None:
    now = 1_800_000_000.0
    for cpm in (1, 100):
        messages = list(Traffic(cpm, now).bodies(30))
        ids: set[str] = set()
        for message in messages:
            decoded = decode_message(message.body, now=now, max_skew=0, max_bytes=1 << 20)
            assert decoded.dead_letters == []
            assert len(decoded.clicks) == message.clicks == cpm
            ids.update(c.click_id for c in decoded.clicks)
        assert len(ids) == 30 * cpm
    assert isinstance(orjson.loads(Traffic(1, now).bodies(1).__next__().body), dict)


def test_clicks_carry_random_uuid4_ids_and_every_optional_field_as_ad_servers_send() -> None:
    now = 1_800_000_000.0
    clicks = [c for m in Traffic(100, now).bodies(10) for c in orjson.loads(m.body)]
    for click in clicks:
        assert uuid.UUID(click["click_id"]).version == 4
        assert click["user_id"] and click["ip"] and click["country"]
    decoded = [decode_message(m.body, now=now, max_skew=0, max_bytes=1 << 20)
               for m in Traffic(100, now).bodies(10)]
    stored = [c for d in decoded for c in d.clicks]
    assert all(c.user_id and c.ip and c.country for c in stored)
    # Random ids: no two consecutive clicks share an id prefix the way sequential ones do.
    prefixes = {c["click_id"][:4] for c in clicks}
    assert len(prefixes) > len(clicks) // 2


def test_sequential_click_ids_stay_available_for_comparison() -> None:
    message = next(Traffic(3, 0.0, click_ids="sequential").bodies(1))
    assert [c["click_id"] for c in orjson.loads(message.body)] == ["b3-0-0", "b3-0-1", "b3-0-2"]
    with pytest.raises(ValueError, match="click_ids"):
        Traffic(1, 0.0, click_ids="v1")


def test_an_unpaced_source_hands_out_everything_then_ends() -> None:
    source = PacedSource(Traffic(1, 0.0).bodies(5), 5, None)
    taken = source.take(3, now=10.0)
    assert isinstance(taken, list) and len(taken) == 3
    rest = source.take(3, now=10.0)
    assert isinstance(rest, list) and len(rest) == 2
    assert source.take(3, now=10.0) is None


def test_a_paced_source_sends_no_more_than_its_rate_allows() -> None:
    source = PacedSource(Traffic(1, 0.0).bodies(100), 100, per_second=10.0)
    assert len(source.take(50, now=100.0)) == 1  # type: ignore[arg-type]
    wait = source.take(50, now=100.05)
    assert isinstance(wait, float) and 0 < wait <= 0.05 + 1e-9
    assert len(source.take(50, now=101.0)) == 10  # type: ignore[arg-type]
    assert len(source.take(500, now=200.0)) == 89  # type: ignore[arg-type]
    assert source.take(1, now=300.0) is None


def test_traffic_without_the_new_fields_is_the_same_clicks_less_those_fields() -> None:
    now = 1_800_000_000.0
    on = [c for m in Traffic(100, now).bodies(5) for c in orjson.loads(m.body)]
    off = [c for m in Traffic(100, now, fields="without-new").bodies(5)
           for c in orjson.loads(m.body)]
    assert all({"device", "campaign_id", "advertiser_id"} <= set(c) for c in on)
    assert off == [{k: v for k, v in c.items() if k not in NEW_FIELDS} for c in on]
    assert all(c["country"] for c in off)  # country was in the contract before issue 13
    with pytest.raises(ValueError, match="fields"):
        Traffic(1, now, fields="some")
