"""What ``farloom bench scale`` loads and runs, decided before anything runs (pure).

The older clicks go into whole hour partitions before the benchmark traffic's
own hour, each holding ``load_rate`` clicks/s worth of an hour (the newest
hours full, the oldest one the remainder), so that no click the benchmark
publishes ever lands in a loaded partition: the "at N rows" runs write into a
raw table that holds N older rows, as a live install does.
"""

from __future__ import annotations

from dataclasses import dataclass

from farloom_tasks.bench.options import ScaleOptions
from farloom_tasks.core.partitions import HOUR, start_of
from farloom_tasks.errors import FarloomError

CLICKS_PER_MESSAGE = 100  # the message size for every scale figure
# The benchmark traffic's clicks are at most this old when published (bench/traffic.py
# spreads them over the 50 s before its start); the loaded hours end before them.
TRAFFIC_LOOKBACK_SECONDS = 120
LOAD_CHUNK_ROWS = 1_000_000  # rows per INSERT ... SELECT (and per commit) while loading


@dataclass(frozen=True)
class LoadedHour:
    start: int  # epoch s, on the hour
    rows: int


def load_plan(rows: int, clicks_per_s: float, now: float) -> list[LoadedHour]:
    """The hour partitions holding ``rows`` older clicks at ``clicks_per_s``, oldest first."""
    per_hour = max(1, int(clicks_per_s * HOUR))
    start = start_of(now - TRAFFIC_LOOKBACK_SECONDS, HOUR) - HOUR
    hours: list[LoadedHour] = []
    left = rows
    while left > 0:
        hours.append(LoadedHour(start, min(per_hour, left)))
        left -= hours[-1].rows
        start -= HOUR
    return hours[::-1]


def chunks(rows: int, size: int = LOAD_CHUNK_ROWS) -> list[tuple[int, int]]:
    """[first, last] row numbers (inclusive, from 0) of each INSERT of ``rows`` rows."""
    return [(first, min(first + size, rows) - 1) for first in range(0, rows, size)]


def check(options: ScaleOptions) -> None:
    """Raise FarloomError, saying which flag, for options the benchmark cannot run with."""
    problems = [
        (options.rows < 1, "--rows must be at least 1"),
        (options.load_rate <= 0, "--load-rate must be above 0"),
        (options.messages < 1, "--messages must be at least 1"),
        (options.repeat < 1, "--repeat must be at least 1"),
        (options.rate <= 0, "--rate must be above 0"),
        (options.duration <= 0, "--duration must be above 0"),
        (options.minute_days < 1, "--minute-days must be at least 1"),
        (options.rollup_days < 30, "--rollup-days must be at least 30 (the longest window)"),
        (options.rollup_days < options.minute_days,
         "--rollup-days must be at least --minute-days"),
        (options.ads_per_minute < 100, "--ads-per-minute must be at least 100 (the top 100)"),
        (options.universe < options.ads_per_minute,
         "--universe must be at least --ads-per-minute"),
        (options.requests < 1, "--requests must be at least 1"),
    ]
    found = [message for bad, message in problems if bad]
    if found:
        raise FarloomError("; ".join(found))
