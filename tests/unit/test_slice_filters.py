"""core.slice_filters: which slice and value a request's filters read."""

from __future__ import annotations

import re
import string
from itertools import product

import pytest

from farloom_tasks.core.countries import ISO_3166_ALPHA2
from farloom_tasks.core.dimensions import parse_dimensions
from farloom_tasks.core.slice_filters import (
    COUNTRY_PATTERN,
    DEVICE_PATTERN,
    FilterError,
    Selection,
    filterable,
    select,
)

DEFAULT = parse_dimensions("country,device")
COMBINED = parse_dimensions("device,device*country")


def test_the_country_pattern_matches_exactly_the_iso_codes_in_any_case() -> None:
    pattern = re.compile(COUNTRY_PATTERN)
    letters = string.ascii_letters
    matched = {a + b for a, b in product(letters, repeat=2) if pattern.search(a + b)}
    assert {code.upper() for code in matched} == set(ISO_3166_ALPHA2)
    assert len(matched) == 4 * len(ISO_3166_ALPHA2)
    assert pattern.search("") and not pattern.search("USA")


def test_the_device_pattern_takes_the_contracts_devices_in_any_case() -> None:
    pattern = re.compile(DEVICE_PATTERN)
    assert all(pattern.search(word) for word in ("mobile", "TV", "DeskTop", "other", ""))
    assert not any(pattern.search(word) for word in ("phone", "mobiles", " tv"))


def test_one_filter_reads_its_slice_with_the_value_as_raw_stores_it() -> None:
    assert select({"country": "us", "device": None}, DEFAULT) == Selection("country", "US",
                                                                           ("country",))
    assert select({"device": "TV", "country": ""}, DEFAULT) == Selection("device", "tv",
                                                                         ("device",))
    assert select({"campaign_id": "c/1"}, ()) == Selection("campaign", "c/1", ("campaign_id",))
    assert select({"country": None, "advertiser_id": ""}, DEFAULT) is None


def test_two_filters_read_their_combination_in_the_slices_order_only_where_configured() -> None:
    chosen = select({"device": "Mobile", "country": "de"}, COMBINED)
    assert chosen == Selection("country*device", "DE*mobile", ("device", "country"))
    with pytest.raises(FilterError) as refused:
        select({"device": "mobile", "country": "de"}, DEFAULT)
    assert refused.value.reason == "unconfigured_combination"
    assert "country, device, campaign, advertiser" in str(refused.value)
    with pytest.raises(FilterError) as owner:
        select({"device": "mobile", "campaign_id": "c"}, COMBINED)
    assert owner.value.reason == "unconfigured_combination"


def test_a_filter_whose_slice_is_not_configured_is_refused_and_left_out_of_the_document() -> None:
    with pytest.raises(FilterError) as refused:
        select({"country": "US"}, COMBINED)
    assert refused.value.reason == "unconfigured_filter"
    assert "device, country*device, campaign, advertiser" in str(refused.value)
    assert filterable(COMBINED) == {"device", "campaign_id", "advertiser_id"}


@pytest.mark.parametrize(("param", "value"), [
    ("country", "ZZ"), ("device", "phone"), ("campaign_id", "x" * 65), ("advertiser_id", "a\x00")])
def test_a_value_outside_its_pattern_or_length_is_malformed(param: str, value: str) -> None:
    with pytest.raises(FilterError) as refused:
        select({param: value}, DEFAULT)
    assert refused.value.reason == "malformed"
