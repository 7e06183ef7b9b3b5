"""The prefetch controller: a few batches of clicks in flight, smoothed, changed when well off."""

from __future__ import annotations

import pytest

from farloom_tasks.core.prefetch import (
    HYSTERESIS,
    MIN_PREFETCH,
    STARTING_PREFETCH,
    Window,
    follow,
    prefetch_for,
    starting_prefetch,
)


def test_the_prefetch_keeps_a_few_batches_of_clicks_in_flight() -> None:
    assert prefetch_for(1.0, batch_size=2000, ceiling=4000) == 4000
    assert prefetch_for(100.0, batch_size=2000, ceiling=4000) == 80
    assert prefetch_for(0.0, batch_size=2000, ceiling=4000) == 4000  # all-invalid messages


def test_the_prefetch_never_drops_below_the_floor_nor_rises_above_the_ceiling() -> None:
    assert prefetch_for(10_000.0, batch_size=2000, ceiling=4000) == MIN_PREFETCH
    assert prefetch_for(1.0, batch_size=2000, ceiling=500) == 500
    assert prefetch_for(10_000.0, batch_size=2000, ceiling=4) == 4


def test_a_fresh_channel_starts_with_a_small_window_under_the_ceiling() -> None:
    assert starting_prefetch(12_000) == STARTING_PREFETCH
    assert starting_prefetch(50) == 50


def test_the_first_batch_sets_the_average_and_moves_a_window_that_is_well_off() -> None:
    window = follow(Window(200), items=2000, messages=2000, batch_size=2000, ceiling=12_000)
    assert window == Window(8000, 1.0)


def test_a_window_close_to_the_ideal_one_is_left_alone_but_the_average_is_learnt() -> None:
    # Ideal for 100 clicks per message: 80 messages; 70 is within a quarter of it.
    window = follow(Window(70), items=1000, messages=10, batch_size=2000, ceiling=12_000)
    assert window.prefetch == 70
    assert window.clicks_per_message == pytest.approx(100.0)


def test_one_odd_batch_moves_the_average_only_by_its_weight() -> None:
    steady = Window(80, clicks_per_message=100.0)
    window = follow(steady, items=1, messages=1, batch_size=2000, ceiling=12_000)
    assert window.clicks_per_message == pytest.approx(100.0 + 0.3 * (1.0 - 100.0))
    assert window.prefetch == 114  # ceil(4 batches * 2000 clicks / 70.3), well off 80


def test_producers_switching_message_size_move_the_window_after_a_few_batches() -> None:
    window = Window(8000, clicks_per_message=1.0)
    sizes = []
    for _ in range(10):
        window = follow(window, items=10_000, messages=100, batch_size=2000, ceiling=12_000)
        sizes.append(window.prefetch)
    assert sizes == [261, 156, 156, 105, 105, 105, 105, 105, 105, 105]
    # Settled within the hysteresis of the 80 messages that 100-click messages want.
    assert abs(sizes[-1] - 80) <= HYSTERESIS * sizes[-1]


def test_the_window_never_leaves_the_floor_and_the_ceiling() -> None:
    huge = follow(Window(200), items=10**6, messages=1, batch_size=2000, ceiling=12_000)
    assert huge.prefetch == MIN_PREFETCH
    tiny = follow(Window(200), items=1, messages=1, batch_size=2000, ceiling=500)
    assert tiny.prefetch == 500
