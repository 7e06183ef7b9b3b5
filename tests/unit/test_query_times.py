"""The query API's time grammar: what TIME_PATTERN matches is exactly what parses."""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from farloom_tasks.core.query_times import TIME_EXAMPLES, TIME_PATTERN, parse_query_minute
from farloom_tasks.core.windows import iso, to_datetime

MATCHES = re.compile(TIME_PATTERN)
NINETY_DAYS = 90 * 86_400


@settings(max_examples=500)
@given(st.from_regex(TIME_PATTERN))
def test_every_string_the_pattern_matches_is_a_minute_a_window_can_reach_either_side_of(
        text: str) -> None:
    minute = parse_query_minute(text)

    assert minute % 60 == 0
    iso(minute - NINETY_DAYS - 86_400)  # the widest window before or after it still exists
    iso(minute + NINETY_DAYS + 86_400)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-29T14:03:00Z", "2026-11-29T14:03:00Z"),
    ("2026-11-29t14:03:59.999999999z", "2026-11-29T14:03:00Z"),
    ("2026-11-29 14:03", "2026-11-29T14:03:00Z"),
    ("2026-11-29T14:03+01:30", "2026-11-29T12:33:00Z"),
    ("2026-11-29 00:30-23:59", "2026-11-30T00:29:00Z"),
    ("2026-11-29", "2026-11-29T00:00:00Z"),
    ("1795960980", "2026-11-29T14:03:00Z"),
    ("1795960980.75", "2026-11-29T14:03:00Z"),
    ("0", "1970-01-01T00:00:00Z"),
    ("1970-01-01T00:00+05:00", "1969-12-31T19:00:00Z"),
    ("2000-02-29", "2000-02-29T00:00:00Z"),
    ("8999-12-31T23:59:59-23:59", "9000-01-01T23:58:00Z"),
    ("2026-11-29 14:03\n", "2026-11-29T14:03:00Z"),  # '$' as a JSON Schema validator reads it
])
def test_each_form_names_the_minute_it_falls_in(text: str, expected: str) -> None:
    assert iso(parse_query_minute(text)) == expected


@pytest.mark.parametrize("text", [
    "", " 2026-11-29 14:03", "yesterday", "14:00", "1e5", "-60", "123456789012",
    "2026-02-29", "2100-02-29", "2026-04-31", "2026-13-01", "2026-11-29T24:00",
    "2026-11-29T14:60", "2026-11-29T14:03:60", "2026-11-29T14", "2026-11-29T14:03+24:00",
    "2026-11-29T14:03+0100", "2026-W48-1", "20261129T1400", "1969-12-31", "9000-01-01",
    "2026-11-29x14:03", "٢٠٢٦-11-29", "2026-11-29T14:03:00.1234567890",
])
def test_anything_else_is_refused_with_the_forms_to_send_instead(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a time; use RFC 3339 .*epoch seconds"):
        parse_query_minute(text)


def test_the_pattern_matches_every_calendar_day_from_1970_to_8999_and_no_other() -> None:
    for year in [*range(1970, 2101), 2400, 8996, 8999]:
        for month in range(1, 13):
            for day in range(1, 32):
                text = f"{year}-{month:02}-{day:02}"
                real = day <= calendar.monthrange(year, month)[1]
                assert bool(MATCHES.search(text)) == real, text
    leap_days = {year for year in range(1970, 9000) if MATCHES.search(f"{year}-02-29")}
    assert leap_days == {year for year in range(1970, 9000) if calendar.isleap(year)}


def test_the_documented_examples_match_and_mean_what_they_say() -> None:
    expected = datetime(2026, 11, 29, 14, 3, tzinfo=UTC)
    for text in TIME_EXAMPLES:
        assert to_datetime(parse_query_minute(text)) == expected, text
