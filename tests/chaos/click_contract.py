"""The test's own reading of the click contract (docs/design.md and README, "The click message").

An oracle written from the contract's text, not from farloom_tasks.core.clicks: it
says whether a message body is rejected whole (and why) and, for a well-formed
body, which elements are valid and in which minute each one counts. Pure.

Whole-message rules: larger than the size limit (not parsed at all), not
UTF-8, or not JSON. "JSON" here is strict: no NaN or Infinity literals, no
number beyond a double, no escaped lone surrogate (the text would not be
Unicode), nesting no deeper than the parser's limit of 1024.

The ads catalog's rule (an ad's campaign and advertiser, once known, never
change) is judged against a catalog the test preloads: a valid click naming an
owner other than the catalog's for its ad is ``mismatched``, dead-lettered as
``ad_owner_mismatch``. Owners named for ads outside that catalog are the same on
every click of an ad (poison.py derives them from the ad), so which click
names them first cannot change what is stored.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAX_ID_CHARS = 64
DEVICES = frozenset({"desktop", "mobile", "tablet", "tv", "other"})
Owner = tuple[str | None, str | None]  # (campaign_id, advertiser_id)
MAX_DEPTH = 1024  # the decoder's nesting limit (orjson's documented limit)
U64_MAX = 2**64 - 1
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z")


@dataclass(frozen=True)
class ValidClick:
    click_id: str
    ad_id: str
    minute: int  # epoch seconds of the UTC minute it counts in
    campaign_id: str | None = None
    advertiser_id: str | None = None


@dataclass(frozen=True)
class Verdict:
    whole_message_code: str | None  # "oversized", "not_utf8", "invalid_json"; None: parsed
    is_batch: bool = False
    valid: tuple[tuple[int | None, ValidClick], ...] = ()  # (element index, click)
    invalid: tuple[tuple[int | None, Any], ...] = ()  # (element index, element)
    mismatched: tuple[tuple[int | None, ValidClick], ...] = ()  # valid, but not its ad's owner


class _NotJson(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJson(f"{text} overflows a double")
    return value


def _depth(value: Any) -> int:
    depth, level = 0, [(value, 1)]
    while level:
        item, d = level.pop()
        depth = max(depth, d)
        if isinstance(item, list):
            level.extend((x, d + 1) for x in item)
        elif isinstance(item, dict):
            level.extend((x, d + 1) for x in item.values())
    return depth


def _unicode(value: Any) -> bool:
    """No string (key or value) anywhere holds a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
    return True


def judge_body(body: bytes, *, now: float, max_skew: float, max_bytes: int,
               catalog: Mapping[str, Owner] | None = None) -> Verdict:
    if len(body) > max_bytes:
        return Verdict("oversized")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Verdict("not_utf8")
    if text.count("[") + text.count("{") > MAX_DEPTH and _bracket_depth(text) > MAX_DEPTH:
        return Verdict("invalid_json")
    try:
        payload = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except (ValueError, RecursionError):
        return Verdict("invalid_json")
    if not _unicode(payload) or _depth(payload) > MAX_DEPTH:
        return Verdict("invalid_json")
    elements: list[tuple[int | None, Any]] = (
        list(enumerate(payload)) if isinstance(payload, list) else [(None, payload)])
    valid, invalid, mismatched = [], [], []
    for index, element in elements:
        click = judge_element(element, now=now, max_skew=max_skew)
        if click is None:
            invalid.append((index, element))
        elif _contradicts((catalog or {}).get(click.ad_id), click):
            mismatched.append((index, click))
        else:
            valid.append((index, click))
    return Verdict(None, isinstance(payload, list), tuple(valid), tuple(invalid),
                   tuple(mismatched))


def _contradicts(owner: Owner | None, click: ValidClick) -> bool:
    if owner is None:
        return False
    campaign, advertiser = owner
    return ((click.campaign_id is not None and click.campaign_id != campaign)
            or (click.advertiser_id is not None and click.advertiser_id != advertiser))


def _bracket_depth(text: str) -> int:
    """Nesting depth of a JSON text, brackets inside strings ignored."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _text_id(value: Any, *, required: bool) -> bool:
    if value is None:
        return not required
    if not isinstance(value, str) or len(value) > MAX_ID_CHARS or "\x00" in value:
        return False
    return bool(value) or not required


def _ad_id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value) if 0 <= value <= U64_MAX else None
    if isinstance(value, str) and 1 <= len(value) <= MAX_ID_CHARS and value.isprintable():
        return value
    return None


def _seconds(value: Any) -> float | None:
    """Epoch seconds of ``clicked_at``, or None if it breaks the contract's format."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str) or _RFC3339.match(value) is None:
        return None
    fraction = re.search(r"\.\d+", value)
    base = value if fraction is None else value[:fraction.start()] + value[fraction.end():]
    base = base.replace("t", "T").replace(" ", "T").replace("z", "+00:00").replace("Z", "+00:00")
    try:
        whole = datetime.fromisoformat(base).timestamp()
    except (ValueError, OverflowError):
        return None
    return whole + (float("0" + fraction.group()) if fraction else 0.0)


def judge_element(element: Any, *, now: float, max_skew: float) -> ValidClick | None:
    """The click ``element`` stands for, or None if it breaks any rule."""
    if not isinstance(element, dict):
        return None
    click_id = element.get("click_id")
    if not _text_id(click_id, required=True) or not _text_id(element.get("user_id"),
                                                             required=False):
        return None
    ad_id = _ad_id(element.get("ad_id"))
    seconds = _seconds(element.get("clicked_at"))
    if ad_id is None or seconds is None or seconds < 0 or seconds > now + max_skew:
        return None
    ip = element.get("ip")
    if ip is not None:
        if not isinstance(ip, str) or "%" in ip:
            return None
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            return None
    country = element.get("country")
    if country is not None and (not isinstance(country, str)
                                or country.upper() not in KNOWN_COUNTRIES):
        return None
    device = element.get("device")
    if device is not None and (not isinstance(device, str) or device.lower() not in DEVICES):
        return None
    campaign_id, advertiser_id = element.get("campaign_id"), element.get("advertiser_id")
    if not (_owner_id(campaign_id) and _owner_id(advertiser_id)):
        return None
    if not _dimensions(element.get("dimensions")):
        return None
    return ValidClick(str(click_id), ad_id, int(seconds // 60) * 60, campaign_id, advertiser_id)


def _owner_id(value: Any) -> bool:
    """campaign_id, advertiser_id: absent, or 1-64 printable characters."""
    return value is None or (isinstance(value, str) and 1 <= len(value) <= MAX_ID_CHARS
                             and value.isprintable())


def _dimensions(value: Any) -> bool:
    """dimensions: absent, or an object of at most 16 name -> value entries; a name is
    [a-z][a-z0-9_]{0,31} and not reserved, a value 1-64 printable characters without *."""
    if value is None:
        return True
    if not isinstance(value, dict) or len(value) > 16:
        return False
    return all(isinstance(name, str) and _DIMENSION_NAME.match(name) is not None
               and name not in RESERVED_NAMES and isinstance(item, str)
               and 1 <= len(item) <= MAX_ID_CHARS and item.isprintable() and "*" not in item
               for name, item in value.items())


_DIMENSION_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
# Reserved dimension names: the contract's fields, the owner slices, the slice statement's
# columns; of PostgreSQL's keywords, the generator draws only "user" (its valid names all
# start with "dim_"), so the oracle needs no copy of the keyword list.
RESERVED_NAMES = frozenset({
    "click_id", "ad_id", "clicked_at", "user_id", "ip", "country", "device", "campaign_id",
    "advertiser_id", "campaign", "advertiser", "dimensions", "minute", "clicks", "g",
    "slice", "value", "distinct_ads", "ad_ids", "ad_clicks", "revision", "user"})

# The generator draws countries only from these and from NOT_COUNTRIES, so the
# oracle needs no copy of the full ISO 3166-1 list.
KNOWN_COUNTRIES = frozenset({"US", "DE", "FR", "JP", "BR", "IN", "GB", "NG"})
NOT_COUNTRIES = ("XX", "USA", "", "U", "ZZ", "1A", "U\u0301S")
