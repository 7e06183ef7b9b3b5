"""Tiling a window of minutes with the coarsest rollups that cover it exactly (pure).

A window is ``[start, end)`` in epoch seconds, both minute-aligned. Its tiling is
whole UTC days where they fit, then whole hours in what is left, then the minutes
at the edges: at most five runs, in time order (minutes, hours, days, hours,
minutes). Every minute of the window lies in exactly one unit of one run, so
summing the rollup rows of the runs gives the same answer as summing the minutes.

Rollups of an hour or day hold only its closed minutes, so ``rollups_until``
bounds where they may be used: from there on the window is read as minutes
(GET /v1/ads/top: docs/design.md, "The query API").
"""

from __future__ import annotations

from dataclasses import dataclass

from farloom_tasks.core.partitions import DAY, HOUR
from farloom_tasks.core.windows import MINUTE

GRAINS = (DAY, HOUR, MINUTE)  # coarsest first
GRAIN_NAMES = {DAY: "day", HOUR: "hour", MINUTE: "minute"}


@dataclass(frozen=True)
class Run:
    """Consecutive units of one grain: ``[start, end)``, both multiples of ``grain``."""

    grain: int
    start: int
    end: int

    @property
    def units(self) -> int:
        return (self.end - self.start) // self.grain


def _floor(moment: int, unit: int) -> int:
    return moment // unit * unit


def _ceil(moment: int, unit: int) -> int:
    return -(-moment // unit) * unit


def _split(start: int, end: int, grains: tuple[int, ...]) -> list[Run]:
    """[start, end) as whole units of grains[0] in the middle and the rest, recursively."""
    if start >= end:
        return []
    grain, finer = grains[0], grains[1:]
    if not finer:
        return [Run(grain, start, end)]
    low, high = _ceil(start, grain), _floor(end, grain)
    if low >= high:
        return _split(start, end, finer)
    return [*_split(start, low, finer), Run(grain, low, high), *_split(high, end, finer)]


def tile(start: int, end: int, rollups_until: int | None = None) -> list[Run]:
    """The runs that tile [start, end), coarsest units first, in time order.

    ``rollups_until`` (minute-aligned): hours and days are used only before it;
    the window from there on is one run of minutes. None: no bound.
    """
    if start % MINUTE or end % MINUTE:
        raise ValueError(f"the window [{start}, {end}) is not minute-aligned")
    if rollups_until is not None and rollups_until % MINUTE:
        raise ValueError(f"rollups_until {rollups_until} is not minute-aligned")
    if start >= end:
        return []
    cut = end if rollups_until is None else max(start, min(end, rollups_until))
    runs = _split(start, cut, GRAINS)
    if cut < end:
        if runs and runs[-1].grain == MINUTE:
            runs[-1] = Run(MINUTE, runs[-1].start, end)
        else:
            runs.append(Run(MINUTE, cut, end))
    return runs


def units_per_grain(runs: list[Run]) -> dict[str, int]:
    """How many days, hours and minutes the runs read (the API reports it)."""
    counts = {GRAIN_NAMES[grain]: 0 for grain in GRAINS}
    for run in runs:
        counts[GRAIN_NAMES[run.grain]] += run.units
    return counts
