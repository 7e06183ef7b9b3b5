"""Capped exponential backoff: how long to wait before the next attempt. Pure.

Every retry loop in Farloom (the ingest worker's stores and broker, the
aggregated writer's broker, the click publisher's reconnects) asks this one
function. Randomness comes in as ``jitter``, a fraction in ``[0.5, 1]`` that the
caller draws, so that many workers restarted at once do not retry in step; a
caller that wants a plain doubling passes ``1.0``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    initial: float  # s, the wait before the first retry
    ceiling: float  # s, no wait is longer than this

    def delay(self, attempt: int, jitter: float = 1.0) -> float:
        """Seconds to wait after ``attempt`` failures in a row (0 = the first one)."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, not {attempt}")
        if not 0.0 < jitter <= 1.0:
            raise ValueError(f"jitter must be in (0, 1], not {jitter}")
        # 2 ** 30 already dwarfs any ceiling; the cap keeps the float finite.
        return min(self.ceiling, self.initial * 2.0 ** min(attempt, 30)) * jitter
