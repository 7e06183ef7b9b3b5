"""core/partitions.py: partition starts, what to make ahead, what retention drops, and the
oldest click ingest accepts (with the click contract's ``beyond_retention``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from farloom_tasks.core.clicks import Click, Rejection, validate_click
from farloom_tasks.core.messages import decode_message
from farloom_tasks.core.partitions import (
    DAY,
    HOUR,
    PartitionRange,
    acceptance_floor,
    expired,
    start_of,
    starts_between,
    wanted_ahead,
)

# 2026-12-02T13:25:10Z
NOW = datetime(2026, 12, 2, 13, 25, 10, tzinfo=UTC).timestamp()
T13 = datetime(2026, 12, 2, 13, tzinfo=UTC).timestamp()


def test_a_partition_starts_on_a_multiple_of_its_length_since_the_epoch() -> None:
    assert start_of(NOW, HOUR) == T13
    assert start_of(NOW, DAY) == datetime(2026, 12, 2, tzinfo=UTC).timestamp()
    assert start_of(NOW, 6 * HOUR) == datetime(2026, 12, 2, 12, tzinfo=UTC).timestamp()
    assert start_of(T13, HOUR) == T13  # the start belongs to its own partition
    assert start_of(T13 - 0.001, HOUR) == T13 - HOUR


def test_starts_between_lists_every_partition_touched_oldest_first() -> None:
    assert starts_between(T13 + 10, T13 + 2 * HOUR, HOUR) == [T13, T13 + HOUR, T13 + 2 * HOUR]
    assert starts_between(T13 + 10, T13 + 20, HOUR) == [T13]


def test_wanted_ahead_covers_now_through_the_skew_and_the_margin() -> None:
    ahead = wanted_ahead(NOW, HOUR, 300, 7200)
    assert ahead[0] == T13
    assert ahead[-1] == start_of(NOW + 300 + 7200, HOUR)
    assert ahead == list(range(int(T13), int(ahead[-1]) + 1, HOUR))
    # A day partition: today's, and tomorrow's once the margin reaches past midnight.
    late = datetime(2026, 12, 2, 23, 0, tzinfo=UTC).timestamp()
    assert wanted_ahead(late, DAY, 300, 7200) == [start_of(late, DAY), start_of(late, DAY) + DAY]


def test_expired_keeps_everything_at_retention_zero() -> None:
    ranges = [PartitionRange(0, HOUR), PartitionRange(HOUR, 2 * HOUR)]
    assert expired(ranges, NOW, 0) == []


def test_expired_returns_only_partitions_that_ended_before_the_horizon_oldest_first() -> None:
    horizon = NOW - 2 * DAY
    ended_long_ago = PartitionRange(int(T13 - 3 * DAY), int(T13 - 3 * DAY + HOUR))
    ends_at_horizon = PartitionRange(int(horizon - HOUR), int(horizon))
    straddles = PartitionRange(int(start_of(horizon, HOUR)), int(start_of(horizon, HOUR) + HOUR))
    recent = PartitionRange(int(T13), int(T13 + HOUR))
    got = expired([recent, straddles, ends_at_horizon, ended_long_ago], NOW, 2)
    assert got == [ended_long_ago, ends_at_horizon]


def test_the_acceptance_floor_is_minus_infinity_without_retention() -> None:
    assert acceptance_floor(NOW, 0, HOUR) == float("-inf")


def test_the_acceptance_floor_refuses_the_partition_retention_drops_next() -> None:
    floor = acceptance_floor(NOW, 2, HOUR)
    horizon = NOW - 2 * DAY
    # The floor is a partition start, after the horizon, at most one length after it.
    assert floor == start_of(floor, HOUR)
    assert horizon < floor <= horizon + HOUR
    # Every partition that holds an accepted click outlives the next hour of retention.
    accepted = PartitionRange(int(floor), int(floor + HOUR))
    assert expired([accepted], NOW + HOUR - 1, 2) == []


def test_a_click_older_than_the_floor_is_refused_as_beyond_retention() -> None:
    floor = acceptance_floor(NOW, 2, HOUR)
    old = {"click_id": "old", "ad_id": "a", "clicked_at": floor - 1}
    kept = {"click_id": "kept", "ad_id": "a", "clicked_at": floor}
    refused = validate_click(old, NOW, 300, floor)
    assert isinstance(refused, Rejection) and refused.code == "beyond_retention"
    assert "2026-11-30T14:00:00Z" in refused.detail  # names the oldest accepted time
    assert isinstance(validate_click(kept, NOW, 300, floor), Click)
    # The rule path (an ip makes the fast path step aside) says the same.
    with_ip = {**old, "ip": "10.0.0.1"}
    slow = validate_click(with_ip, NOW, 300, floor)
    assert isinstance(slow, Rejection) and slow.code == "beyond_retention"
    # RFC 3339 text takes the fast path too.
    text = {**old, "clicked_at": "2026-11-01T00:00:00Z"}
    assert validate_click(text, NOW, 300, floor) == Rejection(
        "beyond_retention", refused.detail.replace(
            datetime.fromtimestamp(floor - 1, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "2026-11-01T00:00:00Z"))


@pytest.mark.parametrize("earliest", [float("-inf"), 0.0])
def test_without_retention_old_clicks_are_accepted(earliest: float) -> None:
    click = validate_click({"click_id": "c", "ad_id": "a", "clicked_at": 1.0}, NOW, 300,
                           earliest)
    assert isinstance(click, Click)


def test_decode_message_dead_letters_old_elements_and_keeps_their_siblings() -> None:
    floor = acceptance_floor(NOW, 2, HOUR)
    body = (b'[{"click_id": "old", "ad_id": "a", "clicked_at": %d},'
            b' {"click_id": "new", "ad_id": "a", "clicked_at": %d}]' % (floor - 60, NOW - 60))
    decoded = decode_message(body, now=NOW, max_skew=300, max_bytes=10_000, earliest=floor)
    assert [c.click_id for c in decoded.clicks] == ["new"]
    assert [(d.rejection.code, d.element_index) for d in decoded.dead_letters] == [
        ("beyond_retention", 0)]
