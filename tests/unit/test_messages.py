"""Decoding message bodies: exactly one Click or one dead letter per element, never an exception."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from farloom_tasks.core.clicks import Click
from farloom_tasks.core.messages import decode_message, encode_clicks

NOW = 1_800_000_000.0
SKEW = 300.0
LIMIT = 1_048_576

_json_scalars = (st.none() | st.booleans() | st.integers(-(2 ** 63), 2 ** 63 - 1)
                 | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20))
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                  max_size=4),
    max_leaves=20,
)
_field_values = _json | st.sampled_from(
    ["2027-01-15T07:59:00Z", "1.2.3.4", "::1", "DE", "ad", NOW - 1, NOW + 10_000, 7])
_click_like = st.fixed_dictionaries({}, optional={
    name: _field_values for name in
    ("click_id", "ad_id", "clicked_at", "user_id", "ip", "country")})
_element = _json | _click_like

_storable_text = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_printable = st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Zl", "Zp", "Zs", "Co", "Cn"))


def _decode(body: bytes) -> Any:
    return decode_message(body, now=NOW, max_skew=SKEW, max_bytes=LIMIT)


@settings(max_examples=300)
@given(st.lists(_element, max_size=12))
def test_every_element_of_an_array_yields_exactly_one_click_or_one_dead_letter(
        elements: list[Any]) -> None:
    decoded = _decode(json.dumps(elements).encode("utf-8"))
    assert len(decoded.clicks) + len(decoded.dead_letters) == len(elements)
    rejected = [letter.element_index for letter in decoded.dead_letters]
    assert rejected == sorted(set(rejected))
    for letter in decoded.dead_letters:
        assert letter.element_index is not None
        assert orjson.loads(letter.body) == orjson.loads(orjson.dumps(elements[
            letter.element_index]))
        assert letter.rejection.code and letter.rejection.detail


@settings(max_examples=300)
@given(_element)
def test_a_single_value_yields_exactly_one_click_or_one_dead_letter(element: Any) -> None:
    if isinstance(element, list):
        return  # an array is a batch; the test above covers it
    decoded = _decode(json.dumps(element).encode("utf-8"))
    assert len(decoded.clicks) + len(decoded.dead_letters) == 1
    assert all(letter.element_index is None for letter in decoded.dead_letters)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(body: bytes) -> None:
    decoded = _decode(body)
    assert all(letter.rejection.code for letter in decoded.dead_letters)


_valid_click = st.fixed_dictionaries(
    {
        "click_id": st.text(_storable_text, min_size=1, max_size=64),
        "ad_id": st.text(_printable, min_size=1, max_size=64) | st.integers(0, 2 ** 53),
        "clicked_at": st.floats(0, NOW + SKEW) | st.datetimes(
            min_value=datetime(1970, 1, 2), max_value=datetime(2027, 1, 15, 7),
            timezones=st.just(UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    },
    optional={
        "user_id": st.text(_storable_text, max_size=64),
        "ip": st.ip_addresses().map(str),
        "country": st.sampled_from(["DE", "us", "Fr", "JP"]),
    },
)


@settings(max_examples=300)
@given(st.lists(_valid_click, min_size=1, max_size=8))
def test_valid_generated_clicks_round_trip(clicks: list[dict[str, Any]]) -> None:
    decoded = _decode(encode_clicks(clicks))
    assert decoded.dead_letters == []
    assert len(decoded.clicks) == len(clicks)
    for sent, got in zip(clicks, decoded.clicks, strict=True):
        assert isinstance(got, Click)
        assert got.click_id == sent["click_id"]
        assert got.ad_id == str(sent["ad_id"])
        if isinstance(sent["clicked_at"], float):
            assert got.clicked_at == sent["clicked_at"]
        else:
            expected = datetime.fromisoformat(sent["clicked_at"].replace("Z", "+00:00"))
            assert got.clicked_at == expected.timestamp()
        assert got.user_id == sent.get("user_id")
        assert got.country == (sent["country"].upper() if "country" in sent else None)
        assert (got.ip is None) == ("ip" not in sent)


def test_valid_siblings_survive_an_invalid_element() -> None:
    body = orjson.dumps([
        {"click_id": "a", "ad_id": 1, "clicked_at": NOW},
        {"click_id": "b", "ad_id": 1, "clicked_at": NOW + SKEW + 60},
        "junk",
        {"click_id": "c", "ad_id": "x", "clicked_at": "2027-01-15T07:00:00Z"},
    ])
    decoded = _decode(body)
    assert [c.click_id for c in decoded.clicks] == ["a", "c"]
    assert [(d.element_index, d.rejection.code) for d in decoded.dead_letters] == [
        (1, "future_timestamp"), (2, "not_object")]


def test_a_body_over_the_limit_is_dead_lettered_whole_without_parsing() -> None:
    body = b"[" + b"1," * 600_000 + b"1]"
    decoded = decode_message(body, now=NOW, max_skew=SKEW, max_bytes=LIMIT)
    assert decoded.clicks == []
    [letter] = decoded.dead_letters
    assert (letter.rejection.code, letter.element_index, letter.body) == ("oversized", None, body)


def test_a_body_that_is_not_utf8_is_told_apart_from_one_that_is_not_json() -> None:
    [not_utf8] = _decode(b'{"click_id": "\xff"}').dead_letters
    [not_json] = _decode(b'{"click_id": ').dead_letters
    assert not_utf8.rejection.code == "not_utf8"
    assert not_json.rejection.code == "invalid_json"
    assert not_utf8.body == b'{"click_id": "\xff"}'


def test_an_empty_array_yields_nothing() -> None:
    decoded = _decode(b"[]")
    assert (decoded.clicks, decoded.dead_letters) == ([], [])


def test_a_validator_bug_dead_letters_the_element_instead_of_stopping_the_stream(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from farloom_tasks.core import messages

    def broken(element: object, now: float, max_skew: float, earliest: float) -> object:
        if isinstance(element, dict) and element.get("click_id") == "trips-the-bug":
            raise TypeError("unhashable type: 'list'")
        return real(element, now, max_skew, earliest)

    real = messages.validate_click
    monkeypatch.setattr(messages, "validate_click", broken)
    body = orjson.dumps([{"click_id": "trips-the-bug", "ad_id": "a", "clicked_at": 100.0},
                         {"click_id": "fine", "ad_id": "a", "clicked_at": 100.0}])

    decoded = messages.decode_message(body, now=200.0, max_skew=0.0, max_bytes=10_000)

    assert [c.click_id for c in decoded.clicks] == ["fine"]
    assert [d.rejection.code for d in decoded.dead_letters] == ["validation_error"]
    assert decoded.dead_letters[0].element_index == 0
