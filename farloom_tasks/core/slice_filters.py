"""The query API's filters: which slice and value a request's filters select. Pure.

``GET /v1/ads/top`` and ``GET /v1/ads/{ad_id}/clicks`` take ``country``, ``device``,
``campaign_id`` and ``advertiser_id`` (docs/design.md §2.10, "Filters"). A filter
reads one slice of ``agg.slice_values`` (migration 0012):

- one filter selects its own slice: ``country``/``device`` when FARLOOM_DIMENSIONS
  configures it (core/dimensions.py), ``campaign``/``advertiser`` always;
- several filters select their combination (``country*device``, value ``US*mobile``)
  only where that combination is configured; campaign and advertiser combine with
  nothing (they are not click dimensions).

Values are checked and normalised as the click contract stores them (country
upper-case, device lower-case), so ``us`` finds the clicks of ``US``. The patterns
below are what the OpenAPI document gives each filter, so a value the document
allows is one the API takes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from farloom_tasks.core.clicks import DEVICES, MAX_ID_CHARS
from farloom_tasks.core.countries import ISO_3166_ALPHA2
from farloom_tasks.core.dimensions import COMBINATION_SEPARATOR, Slice

# The request parameter -> the slice it reads. Owner slices exist whatever the setting.
FILTER_SLICES = {"country": "country", "device": "device",
                 "campaign_id": "campaign", "advertiser_id": "advertiser"}
OWNER_SLICES = ("campaign", "advertiser")
# Reasons of a 400 (api/response_bodies.Reason).
UNCONFIGURED_FILTER = "unconfigured_filter"
UNCONFIGURED_COMBINATION = "unconfigured_combination"


def _either_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in word)


def _country_pattern() -> str:
    by_first: dict[str, list[str]] = {}
    for code in sorted(ISO_3166_ALPHA2):
        by_first.setdefault(code[0], []).append(code[1])
    groups = [f"[{first}{first.lower()}][{''.join(seconds)}{''.join(seconds).lower()}]"
              for first, seconds in by_first.items()]
    return f"^(?:{'|'.join(groups)})$"


# An empty value (`?country=`) means the filter is left out, as a time's does.
COUNTRY_PATTERN = f"^$|{_country_pattern()}"
DEVICE_PATTERN = f"^$|^(?:{'|'.join(_either_case(d) for d in sorted(DEVICES))})$"
# As an ad id in a path: no control character (PostgreSQL refuses a NUL in text).
OWNER_ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
_PATTERNS = {"country": re.compile(COUNTRY_PATTERN), "device": re.compile(DEVICE_PATTERN),
             "campaign_id": re.compile(OWNER_ID_PATTERN),
             "advertiser_id": re.compile(OWNER_ID_PATTERN)}


class FilterError(ValueError):
    """A filter the API cannot serve; ``reason`` is the 400's word."""

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Selection:
    """The slice and value a request's filters read, and the filters it came from."""

    slice: str
    value: str
    filters: tuple[str, ...]


def served_slices(configured: Sequence[Slice]) -> tuple[str, ...]:
    """Every slice a filter can read: the configured ones, then campaign and advertiser."""
    return (*(s.name for s in configured), *OWNER_SLICES)


def filterable(configured: Sequence[Slice]) -> frozenset[str]:
    """The parameters that can be given alone (the document lists only these)."""
    names = set(served_slices(configured))
    return frozenset(param for param, slice_name in FILTER_SLICES.items()
                     if slice_name in names)


def _normalised(param: str, value: str) -> str:
    if param != "country" and param != "device" and not 1 <= len(value) <= MAX_ID_CHARS:
        raise FilterError(f"{param}: ids have 1-{MAX_ID_CHARS} characters, got {len(value)}")
    if _PATTERNS[param].search(value) is None:
        wanted = {"country": "an ISO 3166-1 alpha-2 code such as US (any case)",
                  "device": f"one of {', '.join(sorted(DEVICES))} (any case)"}.get(
            param, "printable characters only")
        raise FilterError(f"{param}: {value[:80]!r} is not {wanted}")
    if param == "country":
        return value.upper()
    return value.lower() if param == "device" else value


def select(filters: Mapping[str, str | None], configured: Sequence[Slice]) -> Selection | None:
    """The slice and value the given filters read (None without any filter).

    ``filters`` maps parameter names of FILTER_SLICES to what was sent (None or "" when
    left out). Raises FilterError naming the configured slices for a filter or a
    combination that is not one.
    """
    given = {param: _normalised(param, value) for param, value in filters.items()
             if value is not None and value != ""}
    if not given:
        return None
    served = served_slices(configured)
    listed = ", ".join(served)
    dimensions = [FILTER_SLICES[param] for param in given]
    if len(dimensions) == 1:
        (param, value), = given.items()
        if dimensions[0] not in served:
            raise FilterError(
                f"{param}: the slice {dimensions[0]!r} is not configured (FARLOOM_DIMENSIONS); "
                f"the configured slices are {listed}", UNCONFIGURED_FILTER)
        return Selection(dimensions[0], value, (param,))
    order = [s.dimensions for s in configured]
    wanted = next((dims for dims in order if sorted(dims) == sorted(dimensions)), None)
    if wanted is None:
        raise FilterError(
            f"{' and '.join(given)} together need the slice "
            f"{COMBINATION_SEPARATOR.join(dimensions)!r}, which is not configured "
            f"(FARLOOM_DIMENSIONS; campaign and advertiser combine with nothing); the "
            f"configured slices are {listed}", UNCONFIGURED_COMBINATION)
    by_dimension = {FILTER_SLICES[param]: value for param, value in given.items()}
    return Selection(COMBINATION_SEPARATOR.join(wanted),
                     COMBINATION_SEPARATOR.join(by_dimension[d] for d in wanted),
                     tuple(given))
