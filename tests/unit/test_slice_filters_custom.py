"""core.slice_filters: the custom dimensions' filter, ``dimension=NAME:VALUE``."""

from __future__ import annotations

import re

import pytest

from farloom_tasks.core.dimensions import parse_dimensions
from farloom_tasks.core.slice_filters import (
    ANY_DIMENSION_PATTERN,
    FilterError,
    Selection,
    dimension_pattern,
    documented_dimensions,
    max_dimension_filters,
    parse_dimension_filters,
    select,
)

TALKINGDATA = parse_dimensions("country,device,os,device_model,os*device_model,os*device")


def test_one_custom_dimension_reads_its_slice_with_the_value_exactly_as_sent() -> None:
    assert select({}, TALKINGDATA, ["os:iOS-13"]) == Selection("os", "iOS-13",
                                                               ("dimension=os",))
    # Case-sensitive and opaque: ':' after the first belongs to the value.
    assert select({"country": ""}, TALKINGDATA, ["device_model:a:B"]) == Selection(
        "device_model", "a:B", ("dimension=device_model",))
    assert select({"country": None}, TALKINGDATA, ["", ""]) is None


def test_a_combination_is_named_and_valued_in_the_canonical_order_whatever_the_order_sent() -> None:
    both = select({}, TALKINGDATA, ["os:13", "device_model:Pixel"])
    assert both == Selection("device_model*os", "Pixel*13",
                             ("dimension=os", "dimension=device_model"))
    with_device = select({"device": "Mobile"}, TALKINGDATA, ["os:13"])
    assert with_device == Selection("device*os", "mobile*13", ("device", "dimension=os"))


def test_an_unconfigured_dimension_or_combination_is_refused_naming_the_configured_slices() -> None:
    listed = "country, device, os, device_model, device_model*os, device*os, campaign, advertiser"
    with pytest.raises(FilterError) as alone:
        select({}, TALKINGDATA, ["carrier:x"])
    assert alone.value.reason == "unconfigured_filter" and listed in str(alone.value)
    with pytest.raises(FilterError) as combined:
        select({"country": "US"}, TALKINGDATA, ["os:13"])
    assert combined.value.reason == "unconfigured_combination" and listed in str(combined.value)
    for owner in ({"campaign_id": "c1"}, {"advertiser_id": "acme"}):
        with pytest.raises(FilterError) as with_owner:
            select(owner, TALKINGDATA, ["os:13"])
        assert with_owner.value.reason == "unconfigured_combination"


def test_a_dimension_given_twice_is_its_own_reason() -> None:
    for items in (["os:1", "os:2"], ["os:1", "os:1"]):
        with pytest.raises(FilterError) as twice:
            select({}, TALKINGDATA, items)
        assert twice.value.reason == "duplicate_filter" and "'os' is given twice" in str(
            twice.value)


@pytest.mark.parametrize(("item", "why"), [
    ("os", "is not NAME:VALUE"), ("os:", "must be 1-64"), ("os:a*b", "'*'"),
    ("os:" + "x" * 65, "must be 1-64"), ("os:a\x00", "control"), ("OS:1", "a-z"),
    ("user:1", "reserved"), ("country:US", "built in"), ("campaign_id:c", "built in"),
    (":1", "must be 1-32"),
])
def test_bad_syntax_is_malformed_with_a_reason(item: str, why: str) -> None:
    with pytest.raises(FilterError) as refused:
        parse_dimension_filters([item])
    assert refused.value.reason == "malformed" and why in str(refused.value)


def test_more_items_than_custom_dimensions_configured_is_malformed_empty_ones_counted() -> None:
    assert max_dimension_filters(TALKINGDATA) == 2
    assert max_dimension_filters(parse_dimensions("country,device")) == 1
    assert select({}, TALKINGDATA, ["", "os:1"]) == Selection("os", "1", ("dimension=os",))
    with pytest.raises(FilterError) as refused:
        select({}, TALKINGDATA, ["", "os:1", "device_model:2"])
    assert refused.value.reason == "malformed" and "at most 2" in str(refused.value)
    with pytest.raises(FilterError) as unbounded:
        parse_dimension_filters([f"d{i}:v" for i in range(17)])
    assert unbounded.value.reason == "malformed"


def test_the_documented_pattern_names_only_the_dimensions_configured_alone() -> None:
    names = documented_dimensions(parse_dimensions("country,os,os*device_model,carrier"))
    assert names == ("carrier", "os")
    pattern = re.compile(dimension_pattern(names))
    assert all(pattern.search(item) for item in ("", "os:13", "carrier:A b:c", "os:" + "é" * 64))
    assert not any(pattern.search(item) for item in (
        "device_model:x", "country:US", "os:", "os:a*b", "os:" + "x" * 65, "os:\x7f", "xos:1"))
    assert documented_dimensions(parse_dimensions("country,device,os*device")) == ()


def test_what_the_documented_pattern_admits_the_api_parses() -> None:
    """A value the pattern takes and no click can carry (not printable) is taken and
    matches nothing: the pattern and the parser agree."""
    pattern = re.compile(ANY_DIMENSION_PATTERN)
    for item in ("os:\u00a0", "os:\u200b", "zz_9:\ufeffx", "os:" + "\U0001f600" * 64):
        assert pattern.search(item), item
        assert parse_dimension_filters([item]) == {item.split(":")[0]: item.split(":", 1)[1]}
