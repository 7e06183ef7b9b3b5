"""The click contract, rule by rule: what is accepted, how it is normalised, what is refused."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from farloom_tasks.core.clicks import (
    Click,
    Rejection,
    parse_rfc3339,
    validate_by_rules,
    validate_click,
)

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
SKEW = 300.0
VALID: dict[str, Any] = {"click_id": "c-1", "ad_id": "ad-7", "clicked_at": NOW - 10}


def _check(**changes: Any) -> Click | Rejection:
    element = {**VALID, **changes}
    for name, value in changes.items():
        if value is _MISSING:
            del element[name]
    return validate_click(element, NOW, SKEW)


_MISSING = object()


def test_a_minimal_click_is_accepted_as_is() -> None:
    assert _check() == Click("c-1", "ad-7", NOW - 10)


def test_a_click_naming_every_optional_field_keeps_them_all() -> None:
    click = _check(user_id="u-1", ip="192.0.2.7", country="FR", device="desktop",
                   campaign_id="camp-3", advertiser_id="adv-1")
    assert click == Click("c-1", "ad-7", NOW - 10, "u-1", "192.0.2.7", "FR", "desktop",
                          "camp-3", "adv-1")


@pytest.mark.parametrize(("changes", "field", "expected"), [
    ({"ad_id": 42}, "ad_id", "42"),
    ({"ad_id": 0}, "ad_id", "0"),
    ({"clicked_at": "2027-01-15T07:59:00Z"}, "clicked_at", NOW - 60),
    ({"clicked_at": "2027-01-15T09:59:00.500+02:00"}, "clicked_at", NOW - 59.5),
    ({"clicked_at": int(NOW) - 5}, "clicked_at", NOW - 5),
    ({"clicked_at": NOW + SKEW}, "clicked_at", NOW + SKEW),
    ({"ip": "2001:DB8::1"}, "ip", "2001:db8::1"),
    ({"ip": "10.0.0.1"}, "ip", "10.0.0.1"),
    ({"country": "de"}, "country", "DE"),
    ({"user_id": "u" * 64}, "user_id", "u" * 64),
    ({"unknown_field": [1, 2]}, "click_id", "c-1"),
    ({"device": "mobile"}, "device", "mobile"),
    ({"device": "TV"}, "device", "tv"),
    ({"device": "Tablet"}, "device", "tablet"),
    ({"device": None}, "device", None),
    ({"campaign_id": "camp-1"}, "campaign_id", "camp-1"),
    ({"campaign_id": "c" * 64}, "campaign_id", "c" * 64),
    ({"campaign_id": "Kampagne Ü"}, "campaign_id", "Kampagne Ü"),
    ({"advertiser_id": "adv 7"}, "advertiser_id", "adv 7"),
    ({"advertiser_id": None}, "advertiser_id", None),
])
def test_valid_fields_are_normalised(changes: dict[str, Any], field: str,
                                     expected: object) -> None:
    click = _check(**changes)
    assert isinstance(click, Click), click
    assert getattr(click, field) == expected


@pytest.mark.parametrize(("changes", "code"), [
    ({"click_id": _MISSING}, "missing_field"),
    ({"ad_id": _MISSING}, "missing_field"),
    ({"clicked_at": _MISSING}, "missing_field"),
    ({"click_id": 12}, "wrong_type"),
    ({"click_id": ""}, "bad_length"),
    ({"click_id": "c" * 65}, "bad_length"),
    ({"click_id": "a\x00b"}, "bad_characters"),
    ({"click_id": "a\ud800"}, "bad_characters"),
    ({"ad_id": True}, "wrong_type"),
    ({"ad_id": -1}, "bad_value"),
    ({"ad_id": 1.5}, "wrong_type"),
    ({"ad_id": ""}, "bad_length"),
    ({"ad_id": "a" * 65}, "bad_length"),
    ({"ad_id": "tab\there"}, "bad_characters"),
    ({"clicked_at": NOW + SKEW + 1}, "future_timestamp"),
    ({"clicked_at": "2099-01-01T00:00:00Z"}, "future_timestamp"),
    ({"clicked_at": "2027-01-15T07:59:00"}, "bad_timestamp"),
    ({"clicked_at": "2027-02-30T00:00:00Z"}, "bad_timestamp"),
    ({"clicked_at": "yesterday"}, "bad_timestamp"),
    ({"clicked_at": -1}, "bad_timestamp"),
    ({"clicked_at": "1969-12-31T23:59:59Z"}, "bad_timestamp"),
    ({"clicked_at": False}, "wrong_type"),
    ({"clicked_at": [NOW]}, "wrong_type"),
    ({"user_id": 5}, "wrong_type"),
    ({"user_id": "u" * 65}, "bad_length"),
    ({"ip": "300.1.1.1"}, "bad_value"),
    ({"ip": "fe80::1%eth0"}, "bad_value"),
    ({"ip": 167772161}, "wrong_type"),
    ({"country": "XX"}, "bad_value"),
    ({"country": "DEU"}, "bad_value"),
    ({"country": 49}, "wrong_type"),
    ({"device": 1}, "wrong_type"),
    ({"device": ["mobile"]}, "wrong_type"),
    ({"device": "phone"}, "bad_value"),
    ({"device": ""}, "bad_value"),
    ({"device": " mobile"}, "bad_value"),
    ({"campaign_id": 12}, "wrong_type"),
    ({"campaign_id": True}, "wrong_type"),
    ({"campaign_id": ""}, "bad_length"),
    ({"campaign_id": "c" * 65}, "bad_length"),
    ({"campaign_id": "tab\there"}, "bad_characters"),
    ({"campaign_id": "a\x00b"}, "bad_characters"),
    ({"campaign_id": "a\ud800"}, "bad_characters"),
    ({"advertiser_id": {"id": 1}}, "wrong_type"),
    ({"advertiser_id": ""}, "bad_length"),
    ({"advertiser_id": "a" * 65}, "bad_length"),
    ({"advertiser_id": "new\nline"}, "bad_characters"),
])
def test_each_broken_rule_is_refused_with_its_code(changes: dict[str, Any], code: str) -> None:
    result = _check(**changes)
    assert isinstance(result, Rejection), result
    assert result.code == code
    assert result.detail


def test_custom_dimensions_are_kept_as_given_and_an_empty_object_is_none() -> None:
    for validate in (validate_click, validate_by_rules):
        click = validate({**VALID, "dimensions": {"os": "13", "device_model": "1"}}, NOW, SKEW)
        assert isinstance(click, Click)
        assert click.dimensions == {"os": "13", "device_model": "1"}
        many = {f"d{n}": "\u00e9t\u00e9" for n in range(16)}  # non-ASCII: the rule path
        assert validate({**VALID, "dimensions": many}, NOW, SKEW) == Click(
            "c-1", "ad-7", NOW - 10, dimensions=many)
        nothing: dict[str, str] | None
        for nothing in ({}, None):
            assert validate({**VALID, "dimensions": nothing}, NOW, SKEW) == Click(
                "c-1", "ad-7", NOW - 10)


@pytest.mark.parametrize(("dimensions", "detail"), [
    ([["os", "13"]], "dimensions must be an object of name -> value, got list"),
    ("os=13", "dimensions must be an object of name -> value, got str"),
    ({f"d{n}": "1" for n in range(17)}, "dimensions has 17 entries; at most 16"),
    ({"OS": "13"}, "dimension name 'OS' must be 1-32 characters of a-z, 0-9 and _"),
    ({"os-version": "13"}, "dimension name 'os-version' must be 1-32"),
    ({"a" * 33: "13"}, "must be 1-32 characters"),
    ({"": "13"}, "dimension name '' must be 1-32"),
    ({"country": "FR"}, "dimension name 'country' is reserved"),
    ({"campaign": "c"}, "dimension name 'campaign' is reserved"),
    ({"ad_id": "a"}, "dimension name 'ad_id' is reserved"),
    ({"user": "u"}, "dimension name 'user' is reserved"),
    ({"os": 13}, "dimension 'os' must be a string, got int"),
    ({"os": None}, "dimension 'os' must be a string, got NoneType"),
    ({"os": ""}, "dimension 'os' must have 1-64 characters, got 0"),
    ({"os": "x" * 65}, "dimension 'os' must have 1-64 characters, got 65"),
    ({"os": "a\x00b"}, "dimension 'os' must contain printable characters only"),
    ({"os": "\ud800"}, "dimension 'os' must contain printable characters only"),
    ({"os": "ios*13"}, "dimension 'os' must not contain '*'"),
])
def test_a_bad_dimensions_object_is_refused_naming_the_bad_entry(dimensions: object,
                                                                  detail: str) -> None:
    for validate in (validate_click, validate_by_rules):
        result = validate({**VALID, "dimensions": dimensions}, NOW, SKEW)
        assert isinstance(result, Rejection), result
        assert result.code == "invalid_dimensions"
        assert detail in result.detail


@pytest.mark.parametrize("element", [None, 1, "click", [VALID], True])
def test_an_element_that_is_not_an_object_is_refused(element: object) -> None:
    result = validate_click(element, NOW, SKEW)
    assert isinstance(result, Rejection) and result.code == "not_object"


def test_rfc3339_needs_an_offset_and_keeps_fractions() -> None:
    assert parse_rfc3339("1970-01-01T00:01:00.25Z") == 60.25
    assert parse_rfc3339("1970-01-01t01:00:00+01:00") == 0.0
    with pytest.raises(ValueError, match="offset"):
        parse_rfc3339("1970-01-01T00:00:00")


_ids = st.text(alphabet=st.characters(codec="ascii"), min_size=0, max_size=70)
_common_shape = st.fixed_dictionaries(
    {"click_id": _ids, "ad_id": _ids,
     "clicked_at": st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                             st.integers(min_value=-10**12, max_value=10**12),
                             st.just("2026-11-29T14:03:07.123Z"), st.text(max_size=30))},
    optional={"user_id": st.one_of(st.none(), _ids), "country": st.one_of(
        st.none(), st.sampled_from(["FR", "fr", "XX", "DE", ""])),
        "ip": st.one_of(
            st.none(), st.ip_addresses().map(str),
            # Near misses of the canonical IPv4 form the fast path accepts.
            st.lists(st.one_of(st.integers(0, 300).map(str), st.sampled_from(
                ["00", "01", "007", "", " 1", "1 ", "\u0661", "1\n", "-1", "+1"])),
                min_size=3, max_size=5).map(".".join),
            st.text(max_size=20)),
        "device": st.one_of(st.none(), st.sampled_from(
            ["desktop", "mobile", "tablet", "tv", "other", "TV", "phone", ""]), st.integers()),
        "campaign_id": st.one_of(st.none(), _ids, st.text(max_size=70), st.integers()),
        "advertiser_id": st.one_of(st.none(), _ids, st.text(max_size=70)),
        "dimensions": st.one_of(
            st.none(), st.integers(), st.lists(_ids, max_size=2),
            st.dictionaries(
                # Valid names, reserved ones, near misses; values valid and not.
                st.one_of(st.sampled_from(["os", "device_model", "a" * 32, "a" * 33, "OS",
                                           "1os", "os-x", "", "user", "country", "minute"]),
                          st.from_regex(r"[a-z][a-z0-9_]{0,31}", fullmatch=True)),
                st.one_of(_ids, st.text(max_size=70), st.integers(), st.none(),
                          st.sampled_from(["ios*13", "\u00e9t\u00e9", "x\ty"])),
                max_size=18))})


@given(_common_shape)
def test_the_fast_path_agrees_with_the_rule_by_rule_validation(element: dict[str, object]) -> None:
    now = 1_764_424_987.0
    assert validate_click(element, now, 300.0) == validate_by_rules(element, now, 300.0)
