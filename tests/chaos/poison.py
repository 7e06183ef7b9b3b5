"""Hostile click messages, drawn with Hypothesis strategies (a seeded, repeatable draw).

Valid-but-nasty elements (SQL and shell metacharacters, control characters and
emoji in click ids, 64-bit ad ids, 1970 and RFC 3339 times with odd offsets,
deep unknown fields, devices in any case, campaign and advertiser ids) sit next
to invalid ones (wrong types, huge strings, NUL, negative, future and malformed
times, bad ips, countries, devices and owner ids) and to clicks of OWNED_AD,
which the test's catalog gives OWNED_BY, naming its owner or another one
(``ad_owner_mismatch``), in mixed batches, and whole bodies that are not UTF-8,
not JSON, NaN, too deep or too large. The generator does not decide what is
valid: click_contract.py does.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.chaos.click_contract import KNOWN_COUNTRIES, NOT_COUNTRIES

METACHARACTERS = ["'; DROP TABLE raw.ad_clicks; --", "\" OR 1=1 --", "$(reboot)", "`id`",
                  "a|b&&c;d", "%s%n%x", "{0}{1}", "\\", "\\\\'", "../../etc/passwd", "*",
                  "<script>alert(1)</script>", "NULL", "null", "\t", "\n", "\r\n", "🦀",
                  "ℹ️", "\u202e", "\u200b", "\ufeff", "Robert'); DROP TABLE Students;--"]
NASTY_TEXT = st.one_of(
    st.sampled_from(METACHARACTERS),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=20),
)
# Integers a 64-bit JSON decoder reads back as integers (larger ones become floats).
INT64 = st.integers(-(2**63), 2**63 - 1)
ALPHANUMERIC = st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-_")
PRINTABLE = st.characters(exclude_categories=["Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs"])


def _cut(text: str, limit: int) -> str:
    return text[:limit]


def owner_of(ad_id: Any) -> tuple[str, str]:
    """The owner every click naming one gives ``ad_id``: derived from the ad, so two
    clicks of one ad never disagree (an int ad and its decimal string are one ad)."""
    text = str(ad_id)
    return "camp:" + text[:59], f"adv:{len(text) % 7}"


OWNED_AD = "owned-ad"  # in the test's preloaded catalog, owned by OWNED_BY
OWNED_BY = owner_of(OWNED_AD)


def _named_owner(element: dict[str, Any]) -> dict[str, Any]:
    """Name the ad's derived owner (both ids, one, or none) when the draw asked to."""
    names = element.pop("names_owner", "")
    campaign, advertiser = owner_of(element["ad_id"])
    if "c" in names:
        element["campaign_id"] = campaign
    if "a" in names:
        element["advertiser_id"] = advertiser
    return element


def _rfc3339(moment: float, offset_minutes: int, fraction: str) -> str:
    zone = timezone(timedelta(minutes=offset_minutes))
    local = datetime.fromtimestamp(int(moment), UTC).astimezone(zone)
    text = local.strftime("%Y-%m-%dT%H:%M:%S") + fraction
    if offset_minutes == 0:
        return text + "Z"
    sign = "+" if offset_minutes > 0 else "-"
    return text + f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"


def _nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def valid_like(now: float) -> st.SearchStrategy[dict[str, Any]]:
    """An element meant to be valid (the oracle has the last word)."""
    past = st.floats(min_value=now - 3 * 86_400, max_value=now - 1, allow_nan=False)
    clicked_at = st.one_of(
        past.map(lambda s: round(s, 3)),
        past.map(int),
        st.sampled_from([0, 1, 86_400 * 365 * 31, 978_307_200.5]),  # 1970 and 2001 are valid
        st.builds(_rfc3339, past, st.integers(-23 * 60 - 59, 23 * 60 + 59),
                  st.sampled_from(["", ".1", ".123", ".123456789"])),
    )
    ad_id = st.one_of(
        st.text(PRINTABLE, min_size=1, max_size=64),
        st.sampled_from([m for m in METACHARACTERS if m.isprintable()]),
        st.integers(0, 2**64 - 1),
    )
    optional: dict[str, st.SearchStrategy[Any]] = {
        "user_id": st.one_of(st.none(), NASTY_TEXT.map(lambda t: _cut(t, 64))),
        "ip": st.ip_addresses().map(str),
        "country": st.sampled_from(sorted(KNOWN_COUNTRIES)).flatmap(
            lambda c: st.sampled_from([c, c.lower()])),
        "unknown": st.one_of(INT64, NASTY_TEXT, st.integers(1, 200).map(_nested)),
        "device": st.sampled_from(["desktop", "Mobile", "TABLET", "tv", "other"]),
        "names_owner": st.sampled_from(["c", "a", "ca"]),
        "dimensions": st.dictionaries(
            st.from_regex(r"dim_[a-z0-9_]{0,8}", fullmatch=True),
            st.text(PRINTABLE, min_size=1, max_size=64).filter(lambda t: "*" not in t),
            max_size=16),
    }
    return st.fixed_dictionaries(
        {"click_id": NASTY_TEXT.map(lambda t: _cut(t, 40)), "ad_id": ad_id,
         "clicked_at": clicked_at},
        optional=optional).map(_named_owner)


def owned_ad_click(now: float) -> st.SearchStrategy[dict[str, Any]]:
    """A click of OWNED_AD naming its owner, part of it, or another owner."""
    campaign, advertiser = OWNED_BY
    return st.fixed_dictionaries(
        {"click_id": st.text(ALPHANUMERIC, min_size=1, max_size=20), "ad_id": st.just(OWNED_AD),
         "clicked_at": st.floats(min_value=now - 86_400, max_value=now - 1).map(
             lambda s: round(s, 3))},
        optional={"campaign_id": st.sampled_from([campaign, "camp:thief"]),
                  "advertiser_id": st.sampled_from([advertiser, "adv:thief"])})


def broken(now: float) -> st.SearchStrategy[Any]:
    """An element meant to be invalid: one field broken, or not an object at all."""
    field_breaks: dict[str, list[Any]] = {
        "click_id": [None, 42, True, ["x"], {"a": 1}, "", "x" * 65, "x" * 20_000, "a\x00b"],
        "ad_id": [None, -1, -(2**63), True, 1.5, ["x"], {}, "", "y" * 65, "y" * 20_000,
                  "tab\there", "nul\x00", "zero\u200bwidth", "line\nbreak"],
        "clicked_at": [None, True, [now], "yesterday", "2026-11-29T14:03:07",
                       "2026-11-29 14:03", "0000-01-01T00:00:00Z", "2026-02-30T00:00:00Z",
                       "2026-11-29T14:03:60Z", -1, -1e9, now + 86_400, 1e15, 9e18,
                       "9999-12-31T23:59:59Z", "2999-01-01T00:00:00+14:00", ""],
        "user_id": [7, ["u"], "u" * 65, "u\x00"],
        "ip": ["1.2.3", "256.1.1.1", "::g", "fe80::1%eth0", 12, "", "1.2.3.4 "],
        "country": [*NOT_COUNTRIES, 1, ["US"], {"code": "US"}, True, 2.5],
        "device": ["phone", "", " tv", 5, ["tv"], True],
        "campaign_id": ["", "c" * 65, 7, "tab\there", "nul\x00", ["c"]],
        "advertiser_id": ["", "a" * 65, 1.5, "line\nbreak", {"id": "a"}],
        # invalid_dimensions: not an object, too many entries, a bad or reserved name, a
        # value of the wrong type, length or characters, or holding the combination's *.
        "dimensions": [[["os", "13"]], "os=13", 7, True,
                       {f"d{n}": "1" for n in range(17)}, {"OS": "1"}, {"": "1"},
                       {"a" * 33: "1"}, {"os-x": "1"}, {"country": "FR"}, {"user": "u"},
                       {"minute": "1"}, {"os": 13}, {"os": None}, {"os": ""},
                       {"os": "x" * 65}, {"os": "a\x00b"}, {"os": "tab\there"},
                       {"os": "ios*13"}, {"os": "ok", "Bad": "1"}],
    }
    one_field = st.sampled_from(sorted(field_breaks)).flatmap(
        lambda name: st.tuples(st.just(name), st.sampled_from(field_breaks[name])))

    def apply(base: dict[str, Any], change: tuple[str, Any]) -> dict[str, Any]:
        name, value = change
        element = dict(base)
        if value is None:
            element.pop(name, None)
            if name in ("user_id", "ip", "country", "device", "campaign_id", "advertiser_id"):
                element[name] = 5  # a missing optional is fine; a wrong type is not
        else:
            element[name] = value
        return element

    not_object = st.one_of(INT64, NASTY_TEXT, st.none(),
                           st.booleans(), st.lists(INT64, max_size=3),
                           st.floats(allow_nan=False, allow_infinity=False))
    # The common shape (ASCII ids, a number for the time, nothing optional but a country)
    # is what a validator's fast path sees: break fields of that shape too.
    plain = st.fixed_dictionaries(
        {"click_id": st.text(ALPHANUMERIC, min_size=1, max_size=20),
         "ad_id": st.text(ALPHANUMERIC, min_size=1, max_size=20),
         "clicked_at": st.floats(min_value=now - 86_400, max_value=now - 1).map(
             lambda s: round(s, 3))},
        optional={"country": st.sampled_from(sorted(KNOWN_COUNTRIES))})
    base = st.one_of(valid_like(now), plain)
    return st.one_of(st.builds(apply, base, one_field), not_object)


def whole_body() -> st.SearchStrategy[bytes]:
    """A body that is rejected as a whole: not UTF-8, not JSON, too deep."""
    return st.one_of(
        st.sampled_from([b'{"click_id": "x", ', b"", b"   ", b"[1, 2", b"nul\x00l", b"}{",
                         b'[{"click_id": "n", "ad_id": "a", "clicked_at": NaN}]',
                         b'{"click_id": "i", "ad_id": "a", "clicked_at": Infinity}',
                         b'{"click_id": "o", "ad_id": "a", "clicked_at": 1e400}',
                         b'[{"click_id": "s\\ud800", "ad_id": "a", "clicked_at": 1}]',
                         b"\xff\xfe\x00{}", b'{"click_id": "\xc3\x28"}', b"\xed\xa0\x80"]),
        st.binary(min_size=1, max_size=64).filter(lambda b: not _is_json(b)),
        st.integers(1025, 3000).map(lambda n: b"[" * n + b"]" * n),
    )


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


def message(now: float, max_bytes: int) -> st.SearchStrategy[bytes]:
    valid, invalid, owned = valid_like(now), broken(now), owned_ad_click(now)
    element = st.integers(0, 19).flatmap(
        lambda n: invalid if n < 6 else owned if n < 8 else valid)
    batch = st.lists(element, min_size=1, max_size=8)
    encoded = st.one_of(
        st.builds(lambda e, a: json.dumps(e, ensure_ascii=a).encode(), element, st.booleans()),
        st.builds(lambda b, a: json.dumps(b, ensure_ascii=a).encode(), batch, st.booleans()),
    )
    oversized = st.integers(max_bytes + 1, max_bytes * 3).map(
        lambda n: json.dumps([{"click_id": "big", "ad_id": "a", "clicked_at": now - 1,
                               "pad": "p" * n}]).encode())
    # 2 % oversized, 18 % rejected whole for another reason, the rest element by element.
    return st.integers(0, 99).flatmap(
        lambda n: oversized if n < 2 else whole_body() if n < 20 else encoded)


def with_unique_click_ids(bodies: list[bytes]) -> list[bytes]:
    """Suffix every plausible click id with a serial, so no two valid clicks share one.

    Which of two valid clicks with one id is stored is a race between batches;
    unique ids keep the truth independent of it. Ids that break the contract
    on purpose (empty, too long, NUL) are left alone.
    """
    unique: list[bytes] = []
    for serial, body in enumerate(bodies):
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            unique.append(body)
            continue
        elements = payload if isinstance(payload, list) else [payload]
        touched = False
        for number, element in enumerate(elements):
            click_id = element.get("click_id") if isinstance(element, dict) else None
            if isinstance(click_id, str) and 0 < len(click_id) <= 40 and "\x00" not in click_id:
                element["click_id"] = f"{click_id}#{serial}.{number}"
                touched = True
        try:
            unique.append(json.dumps(payload, ensure_ascii=serial % 2 == 0).encode()
                          if touched else body)
        except UnicodeEncodeError:  # a lone surrogate: rejected whole anyway
            unique.append(body)
    return unique


def draw_messages(count: int, now: float, max_bytes: int) -> list[bytes]:
    """``count`` message bodies, the same ones on every run (derandomized)."""
    drawn: list[bytes] = []

    @settings(max_examples=count, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(message(now, max_bytes))
    def collect(body: bytes) -> None:
        drawn.append(body)

    collect()
    return drawn
