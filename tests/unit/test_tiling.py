"""Tiling a window with days, hours and minutes: exactly once, coarsest first."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from farloom_tasks.core.partitions import DAY, HOUR
from farloom_tasks.core.tiling import Run, tile, units_per_grain
from farloom_tasks.core.windows import MINUTE

MIDNIGHT = int(datetime(2026, 11, 29, tzinfo=UTC).timestamp())


def at(day: int, hour: int = 0, minute: int = 0) -> int:
    return MIDNIGHT + day * DAY + hour * HOUR + minute * MINUTE


def minutes_of(runs: list[Run]) -> list[int]:
    """Every minute the runs cover, once per unit that covers it."""
    covered: list[int] = []
    for run in runs:
        assert run.start % run.grain == 0 and run.end % run.grain == 0, run
        assert run.start < run.end, run
        covered.extend(range(run.start, run.end, MINUTE))
    return covered


def assert_coarsest(runs: list[Run]) -> None:
    """No whole day is read as hours or minutes, no whole hour as minutes."""
    for run in runs:
        for coarser in (DAY, HOUR):
            if coarser <= run.grain:
                continue
            first_whole = -(-run.start // coarser) * coarser
            assert first_whole + coarser > run.end, (run, coarser)
    # ... and no finer run joins a neighbour into a whole coarser unit.
    for grain in (DAY, HOUR):
        covered = minutes_of([r for r in runs if r.grain < grain])
        whole = {m // grain for m in covered}
        for unit in whole:
            inside = [m for m in covered if m // grain == unit]
            assert len(inside) < grain // MINUTE, (unit * grain, grain)


def test_a_window_inside_one_hour_is_all_minutes() -> None:
    assert tile(at(0, 14, 3), at(0, 14, 58)) == [Run(MINUTE, at(0, 14, 3), at(0, 14, 58))]


def test_a_whole_aligned_hour_is_one_hour_and_a_whole_day_one_day() -> None:
    assert tile(at(0, 14), at(0, 15)) == [Run(HOUR, at(0, 14), at(0, 15))]
    assert tile(at(0), at(1)) == [Run(DAY, at(0), at(1))]


def test_unaligned_ends_give_edge_minutes_around_whole_hours_and_days() -> None:
    runs = tile(at(0, 21, 17), at(3, 2, 5))

    assert runs == [Run(MINUTE, at(0, 21, 17), at(0, 22)),
                    Run(HOUR, at(0, 22), at(1)),
                    Run(DAY, at(1), at(3)),
                    Run(HOUR, at(3), at(3, 2)),
                    Run(MINUTE, at(3, 2), at(3, 2, 5))]
    assert units_per_grain(runs) == {"day": 2, "hour": 4, "minute": 48}


def test_crossing_midnight_without_a_whole_day_uses_hours_across_it() -> None:
    runs = tile(at(0, 22, 30), at(1, 1, 30))

    assert runs == [Run(MINUTE, at(0, 22, 30), at(0, 23)),
                    Run(HOUR, at(0, 23), at(1, 1)),
                    Run(MINUTE, at(1, 1), at(1, 1, 30))]


def test_an_aligned_start_and_an_unaligned_end_have_no_leading_minutes() -> None:
    assert tile(at(0), at(1, 0, 1)) == [Run(DAY, at(0), at(1)), Run(MINUTE, at(1), at(1, 0, 1))]
    assert tile(at(0, 5), at(0, 7, 30)) == [Run(HOUR, at(0, 5), at(0, 7)),
                                            Run(MINUTE, at(0, 7), at(0, 7, 30))]


def test_ninety_days_ending_at_an_unaligned_minute() -> None:
    end = at(90, 14, 38)
    runs = tile(end - 90 * DAY, end)

    assert units_per_grain(runs) == {"day": 89, "hour": 23, "minute": 60}
    assert sorted(minutes_of(runs)) == list(range(end - 90 * DAY, end, MINUTE))


def test_an_empty_window_has_no_runs_and_an_unaligned_one_is_refused() -> None:
    assert tile(at(0, 1), at(0, 1)) == []
    with pytest.raises(ValueError, match="minute-aligned"):
        tile(at(0) + 30, at(1))


def test_random_windows_are_covered_exactly_once_by_the_coarsest_units() -> None:
    rng = random.Random(11)
    for _ in range(300):
        start = MIDNIGHT + rng.randrange(-3 * 1440, 3 * 1440) * MINUTE
        end = start + rng.randrange(1, 12 * 1440) * MINUTE
        runs = tile(start, end)

        assert sorted(minutes_of(runs)) == list(range(start, end, MINUTE))
        assert [r.start for r in runs] == sorted(r.start for r in runs)
        assert len(runs) <= 5
        assert_coarsest(runs)
