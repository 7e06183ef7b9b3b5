"""The click contract (docs/design.md, "The click message"): a Click or a Rejection per element.

Pure: the current time is an argument. Each rule that fails produces a
Rejection with a stable ``code`` (low-cardinality, for metrics and for
filtering the dead-letter queue) and a ``detail`` a person can act on.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from farloom_tasks.core import custom_dimensions
from farloom_tasks.core.countries import ISO_3166_ALPHA2

MAX_ID_CHARS = 64
# The devices a click may name; matched case-insensitively and stored lower-case,
# as country codes are matched case-insensitively and stored upper-case.
DEVICES = frozenset({"desktop", "mobile", "tablet", "tv", "other"})
# Clicks before 1970 are certainly corrupt, and negative epochs are a common bug.
# An IPv4 address as ``str(ipaddress.ip_address(text))`` writes it: four decimal octets
# of at most 255 without leading zeros. Anything else (IPv6, a zone) takes the rules.
_CANONICAL_IPV4 = re.compile(
    r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
    r"(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}\Z")
EARLIEST_EPOCH = 0.0

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z"
)


# Not frozen: a frozen dataclass's __init__ calls object.__setattr__ once per field,
# a cost paid per click on the ingest hot path (how much: docs/benchmarks.md,
# "Figures behind the code"). Treat instances as immutable.
@dataclass(slots=True)
class Click:
    click_id: str
    ad_id: str
    clicked_at: float  # epoch seconds, UTC
    user_id: str | None = None
    ip: str | None = None
    country: str | None = None
    device: str | None = None  # one of DEVICES
    campaign_id: str | None = None
    advertiser_id: str | None = None
    # Custom dimensions (core/custom_dimensions.py), name -> value; None when the click
    # names none (an empty object too), stored as NULL.
    dimensions: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    code: str  # e.g. "missing_field", "future_timestamp"
    detail: str  # human-readable reason, carried in the dead-letter header

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


class _Invalid(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.rejection = Rejection(code, detail)


def _storable(value: str) -> bool:
    # PostgreSQL text cannot hold NUL, and lone surrogates cannot be encoded as UTF-8.
    if "\x00" in value:
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _identifier(element: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = element.get(name)
    if value is None:
        if required:
            raise _Invalid("missing_field", f"{name} is required")
        return None
    if not isinstance(value, str):
        raise _Invalid("wrong_type", f"{name} must be a string, got {type(value).__name__}")
    if not value and required:
        raise _Invalid("bad_length", f"{name} must not be empty")
    if len(value) > MAX_ID_CHARS:
        raise _Invalid("bad_length", f"{name} has {len(value)} characters; at most {MAX_ID_CHARS}")
    if not _storable(value):
        raise _Invalid("bad_characters", f"{name} holds NUL or an unpaired surrogate")
    return value


def _ad_id(element: dict[str, Any]) -> str:
    value = element.get("ad_id")
    if value is None:
        raise _Invalid("missing_field", "ad_id is required")
    if isinstance(value, bool):  # bool is an int subclass; true is not ad 1
        raise _Invalid("wrong_type", "ad_id must be a string or a non-negative integer, got bool")
    if isinstance(value, int):
        if value < 0:
            raise _Invalid("bad_value", f"ad_id must be non-negative, got {value}")
        return str(value)
    if not isinstance(value, str):
        raise _Invalid(
            "wrong_type",
            f"ad_id must be a string or a non-negative integer, got {type(value).__name__}",
        )
    if not 1 <= len(value) <= MAX_ID_CHARS:
        raise _Invalid("bad_length",
                       f"ad_id must have 1-{MAX_ID_CHARS} characters, got {len(value)}")
    if not value.isprintable():
        raise _Invalid("bad_characters", "ad_id must contain printable characters only")
    return value


def parse_rfc3339(text: str) -> float:
    """RFC 3339 with a mandatory offset, to epoch seconds. Raises ValueError."""
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError("not RFC 3339 with an offset (e.g. 2026-11-29T14:03:07.123Z)")
    fraction = match.group(7) or ""
    # datetime keeps microseconds; finer digits cannot change the minute.
    base = text[: match.start(7)] if fraction else text[: match.start(8)]
    offset = match.group(8)
    offset = "+00:00" if offset in ("Z", "z") else offset
    moment = datetime.fromisoformat(base.replace("t", "T") + fraction[:7] + offset)
    return moment.timestamp()


def _clicked_at(element: dict[str, Any], now: float, max_skew: float,
                earliest: float = float("-inf")) -> float:
    value = element.get("clicked_at")
    if value is None:
        raise _Invalid("missing_field", "clicked_at is required")
    if isinstance(value, bool):
        raise _Invalid("wrong_type", "clicked_at must be RFC 3339 text or epoch seconds, got bool")
    if isinstance(value, int | float):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise _Invalid("bad_timestamp", "clicked_at must be finite")
    elif isinstance(value, str):
        try:
            seconds = parse_rfc3339(value)
        except (ValueError, OverflowError) as exc:
            raise _Invalid("bad_timestamp", f"clicked_at {value[:80]!r}: {exc}") from None
    else:
        raise _Invalid(
            "wrong_type",
            f"clicked_at must be RFC 3339 text or epoch seconds, got {type(value).__name__}",
        )
    if seconds < EARLIEST_EPOCH:
        raise _Invalid("bad_timestamp", "clicked_at is before 1970-01-01T00:00:00Z")
    if seconds > now + max_skew:
        raise _Invalid(
            "future_timestamp",
            f"clicked_at is {seconds - now:.0f} s in the future; "
            f"the allowed skew is {max_skew:g} s",
        )
    if seconds < earliest:
        raise _Invalid(
            "beyond_retention",
            f"clicked_at {_utc(seconds)} is older than raw retention keeps: the oldest "
            f"event time accepted now is {_utc(earliest)} (FARLOOM_RAW_RETENTION_DAYS)",
        )
    return seconds


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ip(element: dict[str, Any]) -> str | None:
    value = element.get("ip")
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid("wrong_type", f"ip must be a string, got {type(value).__name__}")
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise _Invalid("bad_value", f"ip {value[:80]!r} is not an IPv4 or IPv6 address") from None
    # Python accepts an IPv6 zone ("fe80::1%eth0"); PostgreSQL's inet refuses it,
    # which would make the whole batch unstorable.
    if getattr(address, "scope_id", None) is not None:
        raise _Invalid("bad_value", f"ip {value[:80]!r} carries a zone index")
    return str(address)


def _country(element: dict[str, Any]) -> str | None:
    value = element.get("country")
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid("wrong_type", f"country must be a string, got {type(value).__name__}")
    code = value.upper()
    if code not in ISO_3166_ALPHA2:
        raise _Invalid("bad_value", f"country {value[:80]!r} is not an ISO 3166-1 alpha-2 code")
    return code


def _device(element: dict[str, Any]) -> str | None:
    value = element.get("device")
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid("wrong_type", f"device must be a string, got {type(value).__name__}")
    device = value.lower()
    if device not in DEVICES:
        raise _Invalid("bad_value", f"device {value[:80]!r} is not one of "
                                    f"{', '.join(sorted(DEVICES))}")
    return device


def _owner_id(element: dict[str, Any], name: str) -> str | None:
    """campaign_id or advertiser_id: optional, 1-64 printable characters (as ad_id)."""
    value = element.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid("wrong_type", f"{name} must be a string, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_ID_CHARS:
        raise _Invalid("bad_length",
                       f"{name} must have 1-{MAX_ID_CHARS} characters, got {len(value)}")
    if not value.isprintable():  # also refuses NUL and unpaired surrogates
        raise _Invalid("bad_characters", f"{name} must contain printable characters only")
    return value


def _dimensions(element: dict[str, Any]) -> dict[str, str] | None:
    value = element.get(custom_dimensions.FIELD)
    if value is None:
        return None
    problem = custom_dimensions.dimensions_problem(value)
    if problem is not None:
        raise _Invalid("invalid_dimensions", problem)
    return dict(value) or None


def catalog_row_rejection(ad_id: str, campaign_id: str | None,
                          advertiser_id: str | None) -> Rejection | None:
    """Why an ads-catalog row (``farloom ads import``) breaks the click contract's
    rules for these ids, or None: the catalog holds only what a click could name."""
    element = {"ad_id": ad_id, "campaign_id": campaign_id, "advertiser_id": advertiser_id}
    try:
        _ad_id(element)
        _owner_id(element, "campaign_id")
        _owner_id(element, "advertiser_id")
    except _Invalid as invalid:
        return invalid.rejection
    return None


def _valid_owner_shape(value: object) -> bool:
    return value is None or (type(value) is str and 0 < len(value) <= MAX_ID_CHARS
                             and value.isascii() and value.isprintable())


def _valid_common_shape(element: dict[str, Any], latest: float,
                        earliest: float = EARLIEST_EPOCH) -> Click | None:
    """The click most producers send, checked in one pass; None means "use the full rules".

    ASCII ids, a numeric or RFC 3339 time, no ip or an IPv4 address in its canonical
    dotted form (what ``ipaddress`` would give back), an upper-case country, a
    lower-case device, printable ASCII campaign and advertiser ids, custom
    dimensions with printable ASCII values: every
    rule is the same as below, only cheaper (ingest validates every click, and
    this shape takes about a third of the time). Anything else, valid or not,
    returns None and goes through the rule-by-rule checks that explain a rejection.
    """
    click_id, ad_id, clicked_at = (element.get("click_id"), element.get("ad_id"),
                                   element.get("clicked_at"))
    user_id, country, ip = element.get("user_id"), element.get("country"), element.get("ip")
    if not (type(click_id) is str and 0 < len(click_id) <= MAX_ID_CHARS
            and click_id.isascii() and "\x00" not in click_id
            and type(ad_id) is str and 0 < len(ad_id) <= MAX_ID_CHARS
            and ad_id.isascii() and ad_id.isprintable()
            and (ip is None or (type(ip) is str and _CANONICAL_IPV4.match(ip) is not None))
            and (user_id is None or (type(user_id) is str and len(user_id) <= MAX_ID_CHARS
                                     and user_id.isascii() and "\x00" not in user_id))
            and (country is None or (type(country) is str and country in ISO_3166_ALPHA2))):
        return None
    device, campaign_id, advertiser_id = (element.get("device"), element.get("campaign_id"),
                                          element.get("advertiser_id"))
    if not ((device is None or (type(device) is str and device in DEVICES))
            and _valid_owner_shape(campaign_id) and _valid_owner_shape(advertiser_id)):
        return None
    dimensions = element.get(custom_dimensions.FIELD)
    if dimensions is not None:
        if not custom_dimensions.is_common_shape(dimensions):
            return None
        dimensions = dict(dimensions) or None
    if type(clicked_at) is float or type(clicked_at) is int:
        seconds = float(clicked_at)
    elif type(clicked_at) is str:
        try:
            seconds = parse_rfc3339(clicked_at)
        except (ValueError, OverflowError):
            return None
    else:
        return None
    # NaN fails both comparisons and so takes the full rules, which reject it; so
    # does a click older than ``earliest`` (before 1970 or beyond raw retention).
    if not earliest <= seconds <= latest:
        return None
    return Click(click_id, ad_id, seconds, user_id, ip, country, device, campaign_id,
                 advertiser_id, dimensions)


def validate_click(element: object, now: float, max_skew: float,
                   earliest: float = float("-inf")) -> Click | Rejection:
    """Apply every rule of the click contract to one decoded JSON element.

    Unknown fields are ignored. ``now`` is the wall clock in epoch seconds.
    ``earliest`` is the oldest event time raw retention still accepts
    (core.partitions.acceptance_floor; minus infinity keeps everything): an older
    click is refused as ``beyond_retention``.
    """
    if not isinstance(element, dict):
        return Rejection("not_object",
                         f"a click must be a JSON object, got {type(element).__name__}")
    fast = _valid_common_shape(element, now + max_skew, max(EARLIEST_EPOCH, earliest))
    return fast if fast is not None else validate_by_rules(element, now, max_skew, earliest)


def validate_by_rules(element: dict[str, Any], now: float, max_skew: float,
                      earliest: float = float("-inf")) -> Click | Rejection:
    """Every rule, one by one, so that a rejection names the rule it broke."""
    try:
        click_id = _identifier(element, "click_id", required=True)
        assert click_id is not None
        return Click(
            click_id=click_id,
            ad_id=_ad_id(element),
            clicked_at=_clicked_at(element, now, max_skew, earliest),
            user_id=_identifier(element, "user_id", required=False),
            ip=_ip(element),
            country=_country(element),
            device=_device(element),
            campaign_id=_owner_id(element, "campaign_id"),
            advertiser_id=_owner_id(element, "advertiser_id"),
            dimensions=_dimensions(element),
        )
    except _Invalid as invalid:
        return invalid.rejection
