"""What a click source and the confirming publisher exchange.

A ``Source`` hands out ``Outgoing`` messages and is told, in publish order, when
they joined the confirmed prefix; ``PublishStats`` is what the publisher reports
while it runs and when it is done. The publisher and its confirm and failure
rules: ``stores/click_publisher.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(slots=True)
class Outgoing:
    body: bytes
    clicks: int  # click objects in the body, for progress and rates
    token: Any = None  # the source's own marker, handed back on confirm


class Source(Protocol):
    def take(self, limit: int, now: float) -> list[Outgoing] | float | None:
        """Up to ``limit`` messages ready at monotonic time ``now``.

        Returns a non-empty list, or the seconds to wait before asking again,
        or None once the source is exhausted.
        """

    def confirmed(self, messages: list[Outgoing]) -> None:
        """``messages`` joined the confirmed prefix (publish order)."""


@dataclass
class PublishStats:
    messages: int = 0  # distinct messages confirmed
    clicks: int = 0
    republished: int = 0  # sends beyond the first (after a nack or a lost connection)
    reconnects: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def summary(self) -> str:
        seconds = max(self.seconds, 1e-9)
        return (f"published {self.messages:,} messages ({self.clicks:,} clicks) in "
                f"{seconds:.1f} s: {self.messages / seconds:,.0f} msg/s, "
                f"{self.clicks / seconds:,.0f} clicks/s, all confirmed"
                + (f"; {self.republished:,} republished after {self.reconnects} reconnects"
                   if self.reconnects or self.republished else ""))
