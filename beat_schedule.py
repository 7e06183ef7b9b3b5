"""What runs periodically: the only place that says so.

- ``close_due_minutes`` every ``close_tick_seconds``: closes every minute whose
  deadline passed (catching up on any missed while beat or the workers were
  down) and re-aggregates the minutes marked late, so a minute closes within
  one tick of its deadline and a late click is counted within one tick.
- ``reconcile_recent`` every ``reconcile_interval_seconds``: compares raw with
  agg over the last ``reconcile_lookback_minutes`` and replays what differs.

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
        "reconcile-recent": {
            "task": "farloom.reconcile_recent",
            "schedule": timedelta(seconds=settings.reconcile_interval_seconds),
            "options": {"expires": settings.reconcile_interval_seconds},
        },
    }
