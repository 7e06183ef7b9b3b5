"""What runs periodically: the only place that says so.

- ``close_due_minutes`` every ``close_tick_seconds``: closes every minute whose
  deadline passed (catching up on any missed while beat or the workers were
  down) and re-aggregates the minutes marked late, so a minute closes within
  one tick of its deadline and a late click is counted within one tick.
- ``reconcile_recent`` every ``reconcile_interval_seconds``: compares raw with
  agg over the last ``reconcile_lookback_minutes`` and replays what differs.
- ``sweep_slice_rollups`` every ``slice_rollup_sweep_seconds``: builds the slice
  hour and day rollups of closed periods not built yet, oldest first, a few a run
  (pipeline/slice_rollup_builds.py): the trigger after an hour's last minute builds
  most; this catches a missed trigger, a restart or an outage.
- ``maintain_partitions`` every ``maintenance_interval_seconds``: makes the
  partitions of the next hours ahead and applies raw and minute retention
  (pipeline/retention.py). Until its first run, ingest and the aggregated
  writer make any partition they miss themselves.

A tick that waited in the queue longer than a few periods expires unrun: the
next one does the same work, so queued-up ticks after an outage are waste.
Run exactly one beat; a duplicate tick is harmless anyway (docs/design.md, "Idempotence").
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from farloom_tasks.settings import Settings


def build(settings: Settings) -> dict[str, dict[str, Any]]:
    tick = settings.close_tick_seconds
    return {
        "close-due-minutes": {
            "task": "farloom.close_due_minutes",
            "schedule": timedelta(seconds=tick),
            "options": {"expires": max(5.0, tick * 5)},
        },
        "maintain-partitions": {
            "task": "farloom.maintain_partitions",
            "schedule": timedelta(seconds=settings.maintenance_interval_seconds),
            "options": {"expires": settings.maintenance_interval_seconds},
        },
        "sweep-slice-rollups": {
            "task": "farloom.sweep_slice_rollups",
            "schedule": timedelta(seconds=settings.slice_rollup_sweep_seconds),
            "options": {"expires": settings.slice_rollup_sweep_seconds},
        },
        "reconcile-recent": {
            "task": "farloom.reconcile_recent",
            "schedule": timedelta(seconds=settings.reconcile_interval_seconds),
            "options": {"expires": settings.reconcile_interval_seconds},
        },
    }
