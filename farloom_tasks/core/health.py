"""Pipeline health: what is wrong, judged from what the services said. Pure.

``pipeline/status.py`` collects the observations (a ``Snapshot``); ``assess``
is handed them, the time and the previous dead-letter count, and lists what
is wrong. Observations with no problems are healthy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from farloom_tasks.core.windows import MINUTE, iso


class Observations(Protocol):
    """What ``assess`` reads; None means not known."""

    @property
    def unreachable(self) -> dict[str, str]: ...  # service -> error
    @property
    def closed_minute(self) -> int | None: ...  # newest minute the broker confirmed
    @property
    def dead_letters(self) -> int | None: ...  # messages in every dead-letter queue
    @property
    def redis_losses_unrepaired(self) -> int | None: ...
    @property
    def celery_workers(self) -> list[str] | None: ...  # None: not asked


@dataclass(frozen=True)
class Assessment:
    healthy: bool
    problems: list[str]
    lag_seconds: float | None  # how long ago the last closed minute ended


def assess(snapshot: Observations, *, now: float, max_lag_seconds: float,
           previous_dead_letters: int | None) -> Assessment:
    """List what is wrong. Pure: ``now`` and the previous dead count are passed in."""
    problems = [f"{name} is unreachable: {error}"
                for name, error in sorted(snapshot.unreachable.items())]
    lag: float | None = None
    if snapshot.closed_minute is not None:
        lag = max(0.0, now - (snapshot.closed_minute + MINUTE))
        if lag > max_lag_seconds:
            problems.append(f"the last closed minute ({iso(snapshot.closed_minute)}) ended "
                            f"{lag:.0f} s ago, more than the {max_lag_seconds:.0f} s allowed")
    elif "postgresql" not in snapshot.unreachable:
        problems.append("no minute has been closed yet")
    dead = snapshot.dead_letters
    if dead is not None and previous_dead_letters is not None and dead > previous_dead_letters:
        problems.append(f"dead letters are growing: {previous_dead_letters} -> {dead}")
    if snapshot.redis_losses_unrepaired:
        problems.append("Redis lost its data: aggregation is paused until the recent "
                        "minutes are rebuilt from raw (agg.redis_losses)")
    if snapshot.celery_workers is not None and not snapshot.celery_workers:
        problems.append("no Celery worker answered the ping")
    return Assessment(healthy=not problems, problems=problems, lag_seconds=lag)
