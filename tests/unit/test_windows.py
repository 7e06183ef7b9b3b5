"""Minute windows: bucketing, deadlines and which minutes are due (time passed in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from farloom_tasks.core.windows import (
    MINUTE,
    deadline_of,
    due_minutes,
    from_datetime,
    iso,
    last_due_minute,
    minute_of,
    minute_range,
    parse_minute,
    to_datetime,
)

T0 = 1_795_953_780  # 2026-11-29T12:03:00Z, a minute boundary
minutes = st.integers(min_value=0, max_value=4_000_000_000 // MINUTE).map(lambda m: m * MINUTE)
graces = st.floats(min_value=0, max_value=600, allow_nan=False)


def test_a_click_belongs_to_the_minute_it_falls_in() -> None:
    assert iso(T0) == "2026-11-29T12:03:00Z"
    assert minute_of(T0) == T0
    assert minute_of(T0 + 59.999) == T0
    assert minute_of(T0 + 60) == T0 + 60
    assert minute_of(T0 - 0.001) == T0 - 60


def test_negative_epochs_floor_rather_than_truncate() -> None:
    assert minute_of(-0.5) == -60
    assert minute_of(-60) == -60


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_every_instant_lies_inside_its_minute(t: float) -> None:
    m = minute_of(t)
    assert m % MINUTE == 0
    assert m <= t < m + MINUTE


def test_a_minute_is_due_exactly_at_its_deadline() -> None:
    grace = 5.0
    assert deadline_of(T0, grace) == T0 + 65
    assert last_due_minute(T0 + 65 - 0.001, grace) == T0 - 60
    assert last_due_minute(T0 + 65, grace) == T0


@given(st.floats(min_value=1e6, max_value=4e9, allow_nan=False), graces)
def test_the_last_due_minute_is_the_newest_whose_deadline_has_passed(
        now: float, grace: float) -> None:
    last = last_due_minute(now, grace)
    assert deadline_of(last, grace) <= now
    assert deadline_of(last + MINUTE, grace) > now


@given(minutes, st.integers(min_value=0, max_value=500), graces,
       st.floats(min_value=0, max_value=59.99))
def test_due_minutes_cover_every_minute_after_the_watermark_once_oldest_first(
        closed_through: int, behind: int, grace: float, into: float) -> None:
    now = closed_through + behind * MINUTE + MINUTE + grace + into
    due = due_minutes(closed_through, now, grace)
    last = last_due_minute(now, grace)
    assert due == sorted(set(due))
    assert due == list(range(closed_through + MINUTE, last + 1, MINUTE))
    assert all(deadline_of(m, grace) <= now for m in due)
    # Closing them and asking again yields nothing new until the clock moves on.
    assert due_minutes(due[-1] if due else closed_through, now, grace) == []


@given(minutes, st.lists(st.floats(min_value=0, max_value=300), min_size=1, max_size=20),
       graces)
def test_successive_ticks_close_each_minute_exactly_once(
        start: int, steps: list[float], grace: float) -> None:
    closed_through = start
    now = float(start + MINUTE)
    closed: list[int] = []
    for step in steps:
        now += step
        due = due_minutes(closed_through, now, grace)
        closed.extend(due)
        if due:
            closed_through = due[-1]
    assert closed == list(range(start + MINUTE, closed_through + 1, MINUTE))


def test_a_fresh_install_closes_only_the_last_due_minute() -> None:
    assert due_minutes(None, T0 + 65, 5.0) == [T0]


def test_a_fresh_install_catches_up_from_the_first_minute() -> None:
    assert due_minutes(None, T0 + 65, 5.0, first_minute=T0 - 120) == [T0 - 120, T0 - 60, T0]


def test_nothing_is_due_when_the_watermark_is_ahead_of_the_clock() -> None:
    assert due_minutes(T0 + 600, T0 + 65, 5.0) == []


def test_minute_range_is_inclusive_and_aligns_its_ends() -> None:
    assert list(minute_range(T0 + 10, T0 + 125)) == [T0, T0 + 60, T0 + 120]
    assert list(minute_range(T0 + 60, T0)) == []


def test_datetimes_round_trip_through_minutes() -> None:
    assert to_datetime(T0) == datetime(2026, 11, 29, 12, 3, tzinfo=UTC)
    assert from_datetime(to_datetime(T0)) == T0
    assert from_datetime(datetime(2026, 11, 29, 12, 3, 59)) == T0  # naive is read as UTC
    plus_two = timezone(timedelta(hours=2))
    assert from_datetime(datetime(2026, 11, 29, 14, 3, 30, tzinfo=plus_two)) == T0


@pytest.mark.parametrize("text", ["2026-11-29T12:03:00Z", "2026-11-29T12:03:45z",
                                  "2026-11-29 12:03", "2026-11-29T14:03:00+02:00",
                                  " 2026-11-29T12:03:00.5Z "])
def test_a_typed_minute_is_parsed_in_utc(text: str) -> None:
    assert parse_minute(text) == T0


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01 00:00", ""])
def test_an_unparseable_minute_explains_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_minute(text)
