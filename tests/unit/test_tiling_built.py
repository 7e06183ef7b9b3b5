"""core.tiling.tile_built: tiles only with built hours and days, each minute once."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from itertools import pairwise

import pytest

from farloom_tasks.core.partitions import DAY, HOUR
from farloom_tasks.core.tiling import Run, tile, tile_built
from farloom_tasks.core.windows import MINUTE

MIDNIGHT = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp())


def _minutes_covered(runs: list[Run]) -> list[int]:
    return [m for run in runs for m in range(run.start, run.end, MINUTE)]


def test_with_every_period_built_it_tiles_as_tile_does() -> None:
    start, end = MIDNIGHT - 90 * MINUTE, MIDNIGHT + 2 * DAY + 3 * HOUR + 7 * MINUTE
    hours = frozenset(range(MIDNIGHT - 2 * HOUR, end, HOUR))
    days = frozenset(range(MIDNIGHT, end, DAY))
    assert tile_built(start, end, hours, days) == tile(start, end)


def test_nothing_built_is_all_minutes_in_one_run() -> None:
    start, end = MIDNIGHT - 90 * MINUTE, MIDNIGHT + DAY + HOUR
    assert tile_built(start, end, frozenset(), frozenset()) == [Run(MINUTE, start, end)]


def test_an_unbuilt_day_falls_back_to_its_built_hours_and_an_unbuilt_hour_to_minutes() -> None:
    start, end = MIDNIGHT, MIDNIGHT + DAY
    hours = frozenset(h for h in range(start, end, HOUR) if h != MIDNIGHT + 5 * HOUR)
    assert tile_built(start, end, hours, frozenset()) == [
        Run(HOUR, MIDNIGHT, MIDNIGHT + 5 * HOUR),
        Run(MINUTE, MIDNIGHT + 5 * HOUR, MIDNIGHT + 6 * HOUR),
        Run(HOUR, MIDNIGHT + 6 * HOUR, end)]


def test_a_built_day_or_hour_outside_the_window_is_not_used() -> None:
    start, end = MIDNIGHT + 30 * MINUTE, MIDNIGHT + 3 * HOUR
    runs = tile_built(start, end, frozenset({MIDNIGHT, MIDNIGHT + HOUR}), frozenset({MIDNIGHT}))
    assert runs == [Run(MINUTE, start, MIDNIGHT + HOUR), Run(HOUR, MIDNIGHT + HOUR,
                                                               MIDNIGHT + 2 * HOUR),
                    Run(MINUTE, MIDNIGHT + 2 * HOUR, end)]


def test_an_unaligned_window_is_refused() -> None:
    with pytest.raises(ValueError, match="not minute-aligned"):
        tile_built(MIDNIGHT + 1, MIDNIGHT + HOUR, frozenset(), frozenset())


def test_random_windows_and_built_sets_cover_each_minute_once_with_built_units_only() -> None:
    rng = random.Random(13)
    for _ in range(300):
        start = MIDNIGHT + rng.randrange(-3 * DAY, 3 * DAY, MINUTE)
        end = start + rng.randrange(0, 5 * DAY, MINUTE)
        hours = frozenset(h for h in range(start - start % HOUR, end, HOUR)
                          if rng.random() < 0.7)
        days = frozenset(d for d in range(start - start % DAY, end, DAY) if rng.random() < 0.5)
        runs = tile_built(start, end, hours, days)
        assert _minutes_covered(runs) == list(range(start, end, MINUTE))
        for run in runs:
            assert start <= run.start < run.end <= end
            assert run.start % run.grain == 0 and run.end % run.grain == 0
            units = set(range(run.start, run.end, run.grain))
            if run.grain == DAY:
                assert units <= days
            elif run.grain == HOUR:
                assert units <= hours
        # adjacent runs never share a grain (merged), so the list is as short as it can be
        assert all(a.grain != b.grain for a, b in pairwise(runs))
        # an hour is used unless a built day covers it; never when unbuilt
        for hour in range(start - start % HOUR + (HOUR if start % HOUR else 0), end - HOUR + 1,
                          HOUR):
            in_day = any(r.grain == DAY and r.start <= hour < r.end for r in runs)
            as_hour = any(r.grain == HOUR and r.start <= hour < r.end for r in runs)
            assert as_hour == (hour in hours and not in_day)
