"""Tiling a window of minutes with the coarsest rollups that cover it exactly (pure).

A window is ``[start, end)`` in epoch seconds, both minute-aligned. Its tiling is
whole UTC days where they fit, then whole hours in what is left, then the minutes
at the edges: at most five runs, in time order (minutes, hours, days, hours,
minutes). Every minute of the window lies in exactly one unit of one run, so
summing the rollup rows of the runs gives the same answer as summing the minutes
(each rollup row is the sum of its minutes at every commit: docs/design.md §3.1).
GET /v1/ads/top reads windows this way (docs/design.md §2.10).
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
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


def tile(start: int, end: int) -> list[Run]:
    """The runs that tile [start, end), coarsest units first, in time order."""
    if start % MINUTE or end % MINUTE:
        raise ValueError(f"the window [{start}, {end}) is not minute-aligned")
    return _split(start, end, GRAINS)


def units_per_grain(runs: list[Run]) -> dict[str, int]:
    """How many days, hours and minutes the runs read (the API reports it)."""
    counts = {GRAIN_NAMES[grain]: 0 for grain in GRAINS}
    for run in runs:
        counts[GRAIN_NAMES[run.grain]] += run.units
    return counts


def tile_built(start: int, end: int, built_hours: AbstractSet[int],
               built_days: AbstractSet[int]) -> list[Run]:
    """The runs that tile [start, end) using only rollup periods that are built.

    Slice rollups exist for a (slice, hour or day) only once it is built
    (agg.slice_rollup_periods; stores/slice_rollups.built_periods gives the sets):
    ``tile`` is refined so that a day not in ``built_days`` falls back to its
    hours, and an hour not in ``built_hours`` to its minutes. Adjacent runs of one
    grain are merged, so the result is in time order and every minute of the
    window still lies in exactly one unit.
    """
    runs: list[Run] = []

    def add(grain: int, begin: int, finish: int) -> None:
        if runs and runs[-1].grain == grain and runs[-1].end == begin:
            runs[-1] = Run(grain, runs[-1].start, finish)
        else:
            runs.append(Run(grain, begin, finish))

    def hours(begin: int, finish: int) -> None:
        for hour in range(begin, finish, HOUR):
            if hour in built_hours:
                add(HOUR, hour, hour + HOUR)
            else:
                add(MINUTE, hour, hour + HOUR)

    for run in tile(start, end):
        if run.grain == MINUTE:
            add(MINUTE, run.start, run.end)
        elif run.grain == HOUR:
            hours(run.start, run.end)
        else:
            for day in range(run.start, run.end, DAY):
                if day in built_days:
                    add(DAY, day, day + DAY)
                else:
                    hours(day, day + DAY)
    return runs
