"""``FARLOOM_DIMENSIONS``: which slices of the clicks get their own exact counts. Pure.

The setting is a comma-separated list of slices. A slice is one dimension
(``country``) or a combination of several joined by ``*`` (``country*device``),
which is a slice of its own: its values are the combinations of values that
occur, each with its own per-ad counts and top k. ``country,device`` (the
default) makes two slices; it does not make their combination.

A dimension is either built in, a field of the click contract with its own
column of ``raw.ad_clicks`` (``CLICK_DIMENSIONS``), or custom: any name the
click's ``dimensions`` object may hold (core/custom_dimensions.py; kept in
``raw.ad_clicks.dimensions``, migration 0014), such as the ``os`` that
``farloom import --dimension os`` maps from a CSV column. A custom name is
checked here as strictly as the click validator checks it, because the slice
statement (stores/slices.py) writes it into its SQL. A combination is named
with the built-ins first, in ``CLICK_DIMENSIONS`` order, then the custom names
alphabetically. Campaigns and advertisers are not dimensions here: an ad
belongs to one of each, so their rollups follow from the ad (issue 13).

The slice writer (pipeline/slice_aggregation.py) makes each configured slice
at close, plus ``campaign`` and ``advertiser`` (docs/design.md, "Slices by dimension").
"""

from __future__ import annotations

from dataclasses import dataclass

from farloom_tasks.core import custom_dimensions
from farloom_tasks.errors import ConfigError

VARIABLE = "FARLOOM_DIMENSIONS"
# Click fields a slice can be made of, in the order a combination's name uses.
CLICK_DIMENSIONS = ("country", "device")
DEFAULT_DIMENSIONS = "country,device"
SLICE_SEPARATOR = ","
COMBINATION_SEPARATOR = "*"


@dataclass(frozen=True)
class Slice:
    """One configured slice: a dimension, or a combination of them (in canonical order)."""

    dimensions: tuple[str, ...]

    @property
    def name(self) -> str:
        return COMBINATION_SEPARATOR.join(self.dimensions)

    @property
    def is_combination(self) -> bool:
        return len(self.dimensions) > 1


def is_custom(name: str) -> bool:
    """Whether ``name`` is read from the click's custom ``dimensions`` (not a column)."""
    return name not in CLICK_DIMENSIONS


def _canonical(names: list[str]) -> tuple[str, ...]:
    # device*country and country*device are one slice: the built-ins in CLICK_DIMENSIONS
    # order, then the custom names alphabetically (os*device_model is device_model*os).
    def key(name: str) -> tuple[int, str]:
        return ((CLICK_DIMENSIONS.index(name), "") if name in CLICK_DIMENSIONS
                else (len(CLICK_DIMENSIONS), name))

    return tuple(sorted(names, key=key))


def _parse_slice(item: str, text: str) -> Slice:
    names = [name.strip() for name in item.split(COMBINATION_SEPARATOR)]
    if any(not name for name in names):
        raise ConfigError(f"{VARIABLE}={text!r}: {item!r} has an empty name around "
                          f"{COMBINATION_SEPARATOR!r}")
    for name in names:
        if name in CLICK_DIMENSIONS:
            continue
        problem = custom_dimensions.name_problem(name)
        if problem is not None:
            raise ConfigError(f"{VARIABLE}={text!r}: unknown dimension {name!r}: it is "
                              f"not built in ({', '.join(CLICK_DIMENSIONS)}) and cannot be "
                              f"a custom one: {problem}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{VARIABLE}={text!r}: {item!r} names a dimension twice")
    return Slice(_canonical(names))


def parse_dimensions(text: str) -> tuple[Slice, ...]:
    """The slices ``text`` configures, in the order given; ConfigError says what is wrong."""
    items = [item.strip() for item in text.split(SLICE_SEPARATOR)]
    if any(not item for item in items):
        raise ConfigError(f"{VARIABLE}={text!r} has an empty item: list slices separated "
                          f"by commas, e.g. {DEFAULT_DIMENSIONS!r} or 'country,country*device'")
    slices: list[Slice] = []
    for item in items:
        parsed = _parse_slice(item, text)
        if parsed in slices:
            raise ConfigError(f"{VARIABLE}={text!r}: the slice {parsed.name!r} is listed twice")
        slices.append(parsed)
    return tuple(slices)
