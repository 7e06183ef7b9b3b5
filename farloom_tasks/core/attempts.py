"""An aggregation attempt: one minute computed as one revision. Pure.

The closer and a replay claim attempts (``pipeline/closing.py``); the chord
carries them to ``merge_minute``, which records the attempt as published.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Attempt:
    """One aggregation of one minute as revision ``revision``."""

    minute: int  # epoch seconds
    revision: int
    mark_seq: int | None = None  # the late mark this attempt answers, if any

    def to_json(self) -> dict[str, int | None]:
        return {"minute": self.minute, "revision": self.revision, "mark_seq": self.mark_seq}
