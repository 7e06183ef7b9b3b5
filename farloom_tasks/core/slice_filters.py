"""The query API's filters: which slice and value a request's filters select. Pure.

``GET /v1/ads/top`` and ``GET /v1/ads/{ad_id}/clicks`` take ``country``, ``device``,
``campaign_id`` and ``advertiser_id``, and a custom dimension (core/custom_dimensions.py)
as a repeatable ``dimension=NAME:VALUE`` (docs/design.md §2.10, "Filters"): one
parameter for every custom name, so the OpenAPI document keeps its parameters
whatever FARLOOM_DIMENSIONS names. A filter reads one slice of ``agg.slice_values``
(migration 0012):

- one filter selects its own slice: ``country``/``device``/a custom dimension when
  FARLOOM_DIMENSIONS configures it (core/dimensions.py), ``campaign``/``advertiser``
  always;
- several filters select their combination (``country*device``, value ``US*mobile``;
  ``device*os``, value ``mobile*13``) only where that combination is configured,
  named in core.dimensions' canonical order; campaign and advertiser combine with
  nothing (they are not click dimensions).

Values are checked and normalised as the click contract stores them (country
upper-case, device lower-case), so ``us`` finds the clicks of ``US``; a custom value
is an opaque label, matched exactly (case-sensitive). The patterns below are what
the OpenAPI document gives each filter, so a value the document allows is one the
API takes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from farloom_tasks.core import custom_dimensions
from farloom_tasks.core.clicks import DEVICES, MAX_ID_CHARS
from farloom_tasks.core.countries import ISO_3166_ALPHA2
from farloom_tasks.core.dimensions import COMBINATION_SEPARATOR, Slice, is_custom

# The request parameter -> the slice it reads. Owner slices exist whatever the setting.
FILTER_SLICES = {"country": "country", "device": "device",
                 "campaign_id": "campaign", "advertiser_id": "advertiser"}
OWNER_SLICES = ("campaign", "advertiser")
# Reasons of a 400 (api/response_bodies.Reason).
UNCONFIGURED_FILTER = "unconfigured_filter"
UNCONFIGURED_COMBINATION = "unconfigured_combination"
DUPLICATE_FILTER = "duplicate_filter"
# The custom dimensions' parameter: `dimension=os:13`, repeated for a combination.
DIMENSION_PARAM = "dimension"
DIMENSION_NAME_SEPARATOR = ":"  # no name holds it (core.custom_dimensions.NAME_PATTERN)
MAX_DIMENSION_FILTERS = custom_dimensions.MAX_ENTRIES  # a click holds no more


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
# A custom value as the contract takes it, but for printability, which no JSON-schema
# pattern can state: a value the pattern allows and no click can carry matches nothing.
CUSTOM_VALUE_PATTERN = (rf"[^\x00-\x1f\x7f-\x9f{custom_dimensions.FORBIDDEN_IN_VALUE}]"
                        rf"{{1,{custom_dimensions.MAX_VALUE_CHARS}}}")
_CUSTOM_VALUE = re.compile(rf"{CUSTOM_VALUE_PATTERN}\Z")
_PATTERNS = {"country": re.compile(COUNTRY_PATTERN), "device": re.compile(DEVICE_PATTERN),
             "campaign_id": re.compile(OWNER_ID_PATTERN),
             "advertiser_id": re.compile(OWNER_ID_PATTERN)}


class FilterError(ValueError):
    """A filter the API cannot serve; ``reason`` is the 400's word."""

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


def dimension_pattern(names: Sequence[str]) -> str:
    """The pattern of one ``dimension`` item whose name is one of ``names``; an empty
    item means the filter is left out, as every filter's does."""
    alternatives = "|".join(re.escape(name) for name in sorted(names))
    return (f"^$|^(?:{alternatives}){re.escape(DIMENSION_NAME_SEPARATOR)}"
            f"{CUSTOM_VALUE_PATTERN}$")


# Any name the contract takes: what the parameter's declaration gives before the
# document narrows it to the configured names (documented_dimensions).
ANY_DIMENSION_PATTERN = (f"^$|^[a-z][a-z0-9_]{{0,31}}{re.escape(DIMENSION_NAME_SEPARATOR)}"
                         f"{CUSTOM_VALUE_PATTERN}$")


def documented_dimensions(configured: Sequence[Slice]) -> tuple[str, ...]:
    """The custom dimensions that can be given alone (configured as a slice of their own):
    the document's ``dimension`` pattern names only these, as it lists only the
    built-in filters that can be given alone (``filterable``)."""
    return tuple(sorted(s.name for s in configured
                        if not s.is_combination and is_custom(s.name)))


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


def max_dimension_filters(configured: Sequence[Slice]) -> int:
    """How many ``dimension`` items a request may send: one per custom dimension some
    configured slice has (more give one twice, or one no slice has), and at least one,
    so that a lone unconfigured one is refused as unconfigured."""
    names = {d for s in configured for d in s.dimensions if is_custom(d)}
    return max(1, min(len(names), MAX_DIMENSION_FILTERS))


def parse_dimension_filters(items: Sequence[str],
                            most: int = MAX_DIMENSION_FILTERS) -> dict[str, str]:
    """The custom dimension -> value of ``dimension=NAME:VALUE`` items ("" left out).

    More than ``most`` items, empty ones counted (the document's maxItems counts them),
    are malformed."""
    if len(items) > most:
        raise FilterError(f"{DIMENSION_PARAM}: {len(items)} items; at most {most} (one per "
                          "custom dimension FARLOOM_DIMENSIONS slices by)")
    given = [item for item in items if item != ""]
    parsed: dict[str, str] = {}
    for item in given:
        name, separator, value = item.partition(DIMENSION_NAME_SEPARATOR)
        if not separator:
            raise FilterError(f"{DIMENSION_PARAM}: {item[:80]!r} is not NAME:VALUE "
                              "(e.g. os:13)")
        if not is_custom(name) or name in FILTER_SLICES:
            raise FilterError(f"{DIMENSION_PARAM}: {name!r} is built in; filter it with "
                              f"{name}= instead")
        problem = custom_dimensions.name_problem(name)
        if problem is not None:
            raise FilterError(f"{DIMENSION_PARAM}: {problem}")
        if _CUSTOM_VALUE.match(value) is None:
            raise FilterError(
                f"{DIMENSION_PARAM}: {name}'s value {value[:80]!r} must be 1-"
                f"{custom_dimensions.MAX_VALUE_CHARS} characters, without control "
                f"characters or {custom_dimensions.FORBIDDEN_IN_VALUE!r}")
        if name in parsed:
            raise FilterError(f"{DIMENSION_PARAM}: {name!r} is given twice; a slice has one "
                              "value per dimension", DUPLICATE_FILTER)
        parsed[name] = value
    return parsed


def select(filters: Mapping[str, str | None], configured: Sequence[Slice],
           dimension_filters: Sequence[str] = ()) -> Selection | None:
    """The slice and value the given filters read (None without any filter).

    ``filters`` maps parameter names of FILTER_SLICES to what was sent (None or "" when
    left out); ``dimension_filters`` are the ``dimension=NAME:VALUE`` items. Raises
    FilterError naming the configured slices for a filter or a combination that is not
    one.
    """
    given = {param: _normalised(param, value) for param, value in filters.items()
             if value is not None and value != ""}
    custom = parse_dimension_filters(dimension_filters, max_dimension_filters(configured))
    if not given and not custom:
        return None
    served = served_slices(configured)
    listed = ", ".join(served)
    # The parameter each dimension came from, for the messages and Selection.filters.
    params = {**{FILTER_SLICES[param]: param for param in given},
              **{name: f"{DIMENSION_PARAM}={name}" for name in custom}}
    by_dimension = {**{FILTER_SLICES[param]: value for param, value in given.items()},
                    **custom}
    dimensions = list(by_dimension)
    if len(dimensions) == 1:
        (param, value), = ((params[d], v) for d, v in by_dimension.items())
        if dimensions[0] not in served:
            raise FilterError(
                f"{param}: the slice {dimensions[0]!r} is not configured (FARLOOM_DIMENSIONS); "
                f"the configured slices are {listed}", UNCONFIGURED_FILTER)
        return Selection(dimensions[0], value, (param,))
    order = [s.dimensions for s in configured]
    wanted = next((dims for dims in order if sorted(dims) == sorted(dimensions)), None)
    if wanted is None:
        raise FilterError(
            f"{' and '.join(params.values())} together need the slice "
            f"{COMBINATION_SEPARATOR.join(dimensions)!r}, which is not configured "
            f"(FARLOOM_DIMENSIONS; campaign and advertiser combine with nothing); the "
            f"configured slices are {listed}", UNCONFIGURED_COMBINATION)
    return Selection(COMBINATION_SEPARATOR.join(wanted),
                     COMBINATION_SEPARATOR.join(by_dimension[d] for d in wanted),
                     tuple(params.values()))
