"""FARLOOM_DIMENSIONS: slices parsed, combinations canonical, every bad list refused clearly."""

from __future__ import annotations

import pytest

from farloom_tasks.core.dimensions import (
    CLICK_DIMENSIONS,
    DEFAULT_DIMENSIONS,
    Slice,
    is_custom,
    parse_dimensions,
)
from farloom_tasks.errors import ConfigError
from farloom_tasks.settings import Settings


def test_the_default_is_country_and_device_as_two_slices_without_their_combination() -> None:
    assert parse_dimensions(DEFAULT_DIMENSIONS) == (Slice(("country",)), Slice(("device",)))
    assert Settings().dimensions == DEFAULT_DIMENSIONS


def test_a_combination_is_its_own_slice_beside_its_parts() -> None:
    slices = parse_dimensions("country, country*device")
    assert [s.name for s in slices] == ["country", "country*device"]
    assert [s.is_combination for s in slices] == [False, True]


def test_a_combination_is_named_in_the_click_dimensions_order_whatever_order_it_is_given(
        ) -> None:
    assert parse_dimensions("device*country") == parse_dimensions("country * device")
    assert parse_dimensions("device*country")[0].name == "country*device"


@pytest.mark.parametrize(("text", "reason"), [
    ("country,,device", "has an empty item"),
    ("country,", "has an empty item"),
    ("", "has an empty item"),
    (" , ", "has an empty item"),
    ("country*", "has an empty name around '\\*'"),
    ("country,country", "the slice 'country' is listed twice"),
    ("country*device,device*country", "the slice 'country\\*device' is listed twice"),
    ("country*country", "names a dimension twice"),
])
def test_a_malformed_list_is_refused_saying_why(text: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=f"FARLOOM_DIMENSIONS=.*{reason}"):
        parse_dimensions(text)


@pytest.mark.parametrize(("text", "reason"), [
    ("Country", "must be 1-32 characters of a-z, 0-9 and _"),
    ("country,1os", "must be 1-32 characters"),
    ("os-version", "must be 1-32 characters"),
    ("o" * 33, "must be 1-32 characters"),
    ("device*campaign_id", "is reserved"),
    ("campaign", "is reserved"),
    ("country,click_id", "is reserved"),
    ("user", "is reserved"),  # a PostgreSQL keyword: bare, it would read current_user
    ("select*os", "is reserved"),
    ("minute", "is reserved"),  # a column of the slice statement
])
def test_a_name_that_cannot_be_a_dimension_is_refused_saying_why(text: str, reason: str,
                                                                  ) -> None:
    with pytest.raises(ConfigError, match="unknown dimension") as refused:
        parse_dimensions(text)
    assert reason in str(refused.value)
    assert f"not built in ({', '.join(CLICK_DIMENSIONS)})" in str(refused.value)


def test_a_custom_name_is_a_slice_of_its_own_and_combines_after_the_built_ins() -> None:
    slices = parse_dimensions("os,device_model,os*device*device_model,country*os")
    assert [s.name for s in slices] == ["os", "device_model", "device*device_model*os",
                                        "country*os"]
    assert parse_dimensions("os*device_model") == parse_dimensions("device_model*os")
    assert [is_custom(d) for d in slices[2].dimensions] == [False, True, True]


def test_settings_refuse_a_bad_list_from_the_environment() -> None:
    with pytest.raises(ConfigError, match="FARLOOM_DIMENSIONS='country,Planet'"):
        Settings.from_env({"FARLOOM_DIMENSIONS": "country,Planet"})
    assert Settings.from_env({"FARLOOM_DIMENSIONS": "country,os"}).dimensions == "country,os"
    assert Settings.from_env({"FARLOOM_DIMENSIONS": "device*country"}).dimensions == (
        "device*country")
