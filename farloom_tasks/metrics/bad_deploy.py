"""The bad-deploy alarm: a batch that is nearly all invalid is reported loudly.

Invalid input is dead-lettered and never retried, so a broken producer or a
wrong validation rule would quietly dead-letter everything. This alarm does not
stop the worker (the dead letters keep every element and its reason, and can be
replayed once the cause is fixed); it makes the cause visible, at most once per
ALARM_SECONDS so that the log is not flooded.
"""

from __future__ import annotations

import collections

from farloom_tasks.core.batching import Batch

INVALID_SHARE_ALARM = 0.9  # share of a batch's elements that were invalid
INVALID_ALARM_MIN_ITEMS = 100  # elements; smaller batches say too little
ALARM_SECONDS = 60.0  # s between two alarms


class BadDeployAlarm:
    """Decides, batch by batch, whether to raise the alarm; the caller logs it."""

    def __init__(self) -> None:
        self._last_alarm_at = 0.0  # epoch s

    def check(self, batch: Batch, now: float) -> str | None:
        """The alarm's message for ``batch`` (acked at ``now``), or None."""
        dead_letters = batch.dead_letters  # its invalid elements
        items = batch.clicks_received + len(dead_letters)
        if (items < INVALID_ALARM_MIN_ITEMS
                or len(dead_letters) < INVALID_SHARE_ALARM * items
                or now - self._last_alarm_at < ALARM_SECONDS):
            return None
        self._last_alarm_at = now
        top = collections.Counter(d.rejection.code for d in dead_letters)
        return (f"{len(dead_letters)} of {items} clicks in one batch were invalid "
                f"({', '.join(f'{c}={n}' for c, n in top.most_common(3))}): is a producer or "
                "a validation rule broken?")
