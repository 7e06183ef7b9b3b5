"""Building the slice hour and day rollups once, in bulk (the body of roll_up_slices).

An hour's rollup rows of a slice (``agg.slice_ad_clicks_per_hour``,
``agg.slice_totals_per_hour``) are made once, when every minute of the hour is
closed and sliced, by one set-based ``INSERT ... SELECT ... GROUP BY`` over the
hour's ``agg.slice_values`` rows, and the hour is marked built in
``agg.slice_rollup_periods``; a day's, once its 24 hours are built, from their
rows. One transaction per (grain, period, slice) (stores/slice_rollups.build).
Until then the slice writer pays nothing for rollups, and a read of the period
sums its minutes (or its built hours) instead (core.tiling.tile_built).

**Exactly once.** Each minute's contribution to a built period is counted exactly
once, whatever the order of the builder and the minute's slice writers:
- the builder takes the *slices* lock of every minute the period covers (minute
  order, as reconciliation's repair does) before the statement that sums them and
  writes the mark, and holds them to its commit;
- the writer (stores/slices.write) holds its minute's slices lock, and reads the
  marks in its write statement, which runs after it took the lock; under READ
  COMMITTED that statement's snapshot is taken after the lock was granted.
So either the writer committed before the builder got that minute's lock, and the
builder's statement (a later snapshot) sums the writer's rows while the writer saw
no mark and added nothing; or the builder committed first, and the writer's
statement sees the mark and the built rows and adds exactly new minus old. No
third order exists, since the two hold the same lock. A day is built from its
hours under the slices locks of all its 1,440 minutes by the same argument: no
writer changes an hour row of the day meanwhile, and a writer after it sees both
marks and adds its difference to the hour and the day.

Idempotent: a built period is skipped (checked again after the locks), so the task
run twice, or a trigger racing the sweep, builds once.

When: right after the slice task of an hour's last minute (tasks.aggregate_slices),
the hour, and after the day's last hour the day; and a periodic sweep
(``FARLOOM_SLICE_ROLLUP_SWEEP_SECONDS``) that builds the oldest unbuilt closed
periods, at most ``SWEEP_MAX_BUILDS`` a run, so a missed trigger, a restart or
an outage is caught up. A period is skipped while a minute of it is not sliced at
its latest claimed revision (its slice task is queued or failed: reconciliation
recomputes a failed one) or one of its ``agg.slice_values`` partitions is detached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from farloom_tasks.core.partitions import DAY, HOUR, start_of
from farloom_tasks.stores import slice_rollups
from farloom_tasks.stores.db import Engine
from farloom_tasks.stores.transactions import transaction

SWEEP_MAX_BUILDS = 6  # periods one sweep builds: an hour at the size takes minutes
SWEEP_CANDIDATES = 200  # unbuilt periods one sweep looks at (those not ready are skipped)


@dataclass
class Built:
    """What one call built: (grain, period, slice) with the rollup rows written."""

    periods: list[tuple[str, int, str, int]] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"built": [{"grain": g, "period": p, "slice": s, "rows": n}
                          for g, p, s, n in self.periods]}


def build_period(engine: Engine, names: Sequence[str], grain: str, period: int,
                 built: Built | None = None) -> Built:
    """Build ``grain`` at ``period`` for each slice of ``names`` that can be built now.

    A day first builds any of its hours not built yet (an hour without minutes is
    built empty at no cost), then itself from them.
    """
    built = built if built is not None else Built()
    if grain == "day":
        for hour in range(period, period + DAY, HOUR):
            build_period(engine, names, "hour", hour, built)
    for name in names:
        with transaction(engine) as cursor:
            # Unlocked first: a period that is not ready costs no wait on the locks.
            if not slice_rollups.readiness(cursor, grain, period, name).buildable:
                continue
        with transaction(engine) as cursor:
            rows = slice_rollups.build(cursor, grain, period, name)
        if rows is not None:
            built.periods.append((grain, period, name, rows))
    return built


def is_trigger_minute(minute: int) -> bool:
    """Whether ``minute``'s slice task triggers a build: the last minute of its hour."""
    return minute % HOUR == HOUR - 60


def after_minute(engine: Engine, names: Sequence[str], minute: int) -> Built:
    """The trigger after a minute's slice task: its hour when it is the hour's last
    minute, and then its day when that is the day's last hour."""
    built = Built()
    if not is_trigger_minute(minute):
        return built
    hour = start_of(minute, HOUR)
    build_period(engine, names, "hour", hour, built)
    if hour % DAY == DAY - HOUR:
        build_period(engine, names, "day", start_of(hour, DAY), built)
    return built


def sweep(engine: Engine, names: Sequence[str], max_builds: int = SWEEP_MAX_BUILDS) -> Built:
    """Build the oldest unbuilt closed periods, at most ``max_builds`` of them."""
    built = Built()
    with transaction(engine) as cursor:
        candidates = slice_rollups.unbuilt(cursor, names, SWEEP_CANDIDATES)
    builds = 0
    for grain, period in candidates:
        if builds >= max_builds:
            break
        before = len(built.periods)
        build_period(engine, names, grain, period, built)
        builds += len(built.periods) > before
    return built
