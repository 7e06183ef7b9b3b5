"""The one backoff every retry loop uses: doubling, capped, scaled by the caller's jitter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from farloom_tasks.core.backoff import Backoff


def test_the_wait_doubles_from_the_initial_delay_up_to_the_ceiling() -> None:
    backoff = Backoff(initial=0.5, ceiling=30.0)
    assert [backoff.delay(n) for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_very_long_outage_still_waits_the_ceiling() -> None:
    assert Backoff(initial=0.1, ceiling=5.0).delay(10_000) == 5.0


@given(attempt=st.integers(0, 200), jitter=st.floats(0.5, 1.0))
def test_jitter_only_shortens_the_wait_and_never_below_half(attempt: int, jitter: float) -> None:
    backoff = Backoff(initial=0.05, ceiling=30.0)
    plain = backoff.delay(attempt)
    assert plain / 2 <= backoff.delay(attempt, jitter) <= plain


@pytest.mark.parametrize(("attempt", "jitter"), [(-1, 1.0), (0, 0.0), (0, 1.5)])
def test_an_impossible_attempt_or_jitter_is_refused(attempt: int, jitter: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial=1.0, ceiling=2.0).delay(attempt, jitter)
