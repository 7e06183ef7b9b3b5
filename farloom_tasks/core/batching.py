"""The ingest worker's batch: decoded deliveries accumulate until a flush is due. Pure.

A batch flushes when it holds ``max_items`` clicks and dead letters, when its
oldest delivery is ``max_age_seconds`` old, when the stream has been quiet for
QUIET_FLUSH_SECONDS, or when no more deliveries can arrive (the caller's
prefetch window is full). The last two only stop waiting for what is not
coming: the end of a burst, a pause in traffic, or a window the broker will
not refill before an ack. The caller passes the time in, as in arroyo's
``should_commit(now, ...)``, and flushes on shutdown regardless.

Copies of a click (the same click id at the same clicked_at: a redelivery or a
retry) are deduplicated inside the batch (the first one wins, later copies are
counted as duplicates): PostgreSQL would skip them anyway, and a shorter, sorted
insert is cheaper and takes its row locks in one global order, so concurrent
workers cannot deadlock on overlapping click ids. A click id reused at another
time is kept: in another partition it is another click (docs/design.md, "The
dedup window"), and inside the same partition PostgreSQL keeps the first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from farloom_tasks.core.clicks import Click
from farloom_tasks.core.messages import DeadLetter, DecodedMessage

# s without a delivery after which a partial batch is written: under load deliveries
# are microseconds apart, so only a pause (or the end of a burst) waits this long.
QUIET_FLUSH_SECONDS = 0.02


@dataclass(slots=True)
class Batch:
    """Everything one flush writes, dead-letters and then acks with ``multiple=True``."""

    last_delivery_tag: int = 0  # ack up to and including this tag
    messages: int = 0
    clicks_received: int = 0  # valid clicks before deduplication
    duplicates_in_batch: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    published_at: list[float] = field(default_factory=list)  # epoch s, per stamped message
    first_received_at: float = 0.0  # epoch s
    _clicks: dict[tuple[str, float], Click] = field(default_factory=dict)

    @property
    def clicks(self) -> list[Click]:
        """The distinct clicks, sorted by click id (then time)."""
        return [self._clicks[key] for key in sorted(self._clicks)]

    @property
    def distinct_clicks(self) -> int:
        return len(self._clicks)


class Batcher:
    """Accumulates deliveries of one channel, in delivery order."""

    def __init__(self, max_items: int, max_age_seconds: float) -> None:
        self.max_items = max_items
        self.max_age_seconds = max_age_seconds
        self._batch = Batch()
        self._items = 0
        self._last_added_at = 0.0

    def add(self, delivery_tag: int, decoded: DecodedMessage, published_at: float | None,
            now: float) -> None:
        batch = self._batch
        if batch.messages == 0:
            batch.first_received_at = now
        batch.messages += 1
        batch.last_delivery_tag = delivery_tag
        self._last_added_at = now
        if published_at is not None:
            batch.published_at.append(published_at)
        clicks = batch._clicks
        for click in decoded.clicks:
            key = (click.click_id, click.clicked_at)
            if key in clicks:
                batch.duplicates_in_batch += 1
            else:
                clicks[key] = click
        batch.clicks_received += len(decoded.clicks)
        if decoded.dead_letters:
            batch.dead_letters.extend(decoded.dead_letters)
        self._items += len(decoded.clicks) + len(decoded.dead_letters)

    def __len__(self) -> int:
        """Messages waiting in the current batch."""
        return self._batch.messages

    def should_flush(self, now: float, *, more_can_arrive: bool = True) -> bool:
        if self._batch.messages == 0:
            return False
        return (self._items >= self.max_items or not more_can_arrive
                or now - self._batch.first_received_at >= self.max_age_seconds
                or now - self._last_added_at >= QUIET_FLUSH_SECONDS)

    def seconds_until_due(self, now: float) -> float | None:
        """How long until the current batch is due by age or quiet; None when it is empty."""
        if self._batch.messages == 0:
            return None
        due = min(self._batch.first_received_at + self.max_age_seconds,
                  self._last_added_at + QUIET_FLUSH_SECONDS)
        return max(0.0, due - now)

    def take(self) -> Batch:
        """Hand over the current batch and start an empty one."""
        batch, self._batch, self._items = self._batch, Batch(), 0
        return batch

    def discard(self) -> int:
        """Drop the current batch (its channel is gone; the broker redelivers). Returns messages."""
        return self.take().messages

