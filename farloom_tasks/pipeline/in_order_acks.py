"""In-order acking of the batches an ingest worker writes concurrently.

Up to ``ingest_writers`` batches are written at once, each by its own writer,
while the consume loop fills the next one. Acks still go out in delivery
order, one ``basic_ack(last_delivery_tag, multiple=True)`` per batch, so the
broker's view stays a single prefix of acked messages per channel.

Ack rules (docs/design.md, "No loss" and "Failure rules"):

- A message is acked only after its valid clicks and its rejected elements'
  ledger rows are committed in PostgreSQL and the clicks applied in Redis (the
  write's future has a result), its dead letters are confirmed by the broker,
  and every earlier batch has been acked: a multiple
  ack covers every earlier delivery tag, so a later batch that finished first
  waits for the earlier ones.
- A batch PostgreSQL refused as data (``raw.REFUSED_AS_DATA``) is
  written again click by click (``rewrite``) and acked once that ends, after its
  refused clicks are dead-lettered ("unstorable"). A write's clicks that
  contradict their ad's owner ("ad_owner_mismatch") are dead-lettered the
  same way, before the ack.
- Any other failure of a write propagates out of ``ack_finished`` and acks
  nothing: that batch and every later one stay unacked and in flight (a bug
  must not ack data; ``Abandoned`` stops the worker, and the broker redelivers).
- A lost connection makes its delivery tags meaningless: ``forget`` drops every
  batch in flight without acking it, and the broker redelivers them all (click
  ids deduplicate what was already stored).

The module speaks to the broker only through the two small protocols below, so
a test can prove the order with a fake channel.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from typing import Generic, Protocol, TypeVar

from farloom_tasks import failpoints
from farloom_tasks.core.batching import Batch
from farloom_tasks.core.messages import DeadLetter
from farloom_tasks.pipeline.ingest_sink import Written
from farloom_tasks.stores.raw import REFUSED_AS_DATA

log = logging.getLogger("farloom.ingest")
W = TypeVar("W")  # a writer: whatever owns the connections a batch is written on


class AckChannel(Protocol):
    """The one channel call acking makes."""

    def basic_ack(self, delivery_tag: int, multiple: bool) -> None: ...


class DeadLetterPublishing(Protocol):
    """Publishes dead letters and returns once the broker confirmed every one."""

    def publish(self, letters: Sequence[DeadLetter]) -> None: ...


@dataclasses.dataclass
class InFlight(Generic[W]):
    """A batch being written; it is acked once it and every earlier batch are done."""

    batch: Batch
    writer: W
    started: float  # epoch s, when the flush began
    future: Future[Written] | None = None  # None: not written (yet)


class InOrderAcks(Generic[W]):
    """The batches in flight, oldest first, and the writers free to take the next one."""

    def __init__(self, writers: Iterable[W]) -> None:
        self.idle: collections.deque[W] = collections.deque(writers)
        self._in_flight: collections.deque[InFlight[W]] = collections.deque()

    def __len__(self) -> int:
        """Batches written or being written, not yet acked."""
        return len(self._in_flight)

    @property
    def messages(self) -> int:
        """Messages in flight: delivered, not yet acked."""
        return sum(entry.batch.messages for entry in self._in_flight)

    def start(self, batch: Batch, started: float) -> InFlight[W]:
        """Give ``batch`` an idle writer and queue its ack behind every earlier batch.

        The caller sets ``future`` to the batch's write (its clicks and ledger rows).
        """
        entry = InFlight(batch, self.idle.popleft(), started)
        self._in_flight.append(entry)
        return entry

    def oldest_future(self) -> Future[Written] | None:
        """The write the next ack waits for (None: nothing in flight, or not written)."""
        return self._in_flight[0].future if self._in_flight else None

    def ack_finished(self, channel: AckChannel, dead: DeadLetterPublishing, *,
                     rewrite: Callable[[InFlight[W]], Future[Written]],
                     acked: Callable[[InFlight[W], Written], None]) -> None:
        """Ack the finished writes at the head of the queue, oldest first.

        Stops at the first batch still being written. ``rewrite`` starts the
        click-by-click write of a batch refused as data and returns its future;
        ``acked`` is told of each batch once acked (its writer is idle again by then).
        """
        while self._in_flight:
            entry = self._in_flight[0]
            written = Written()
            if entry.future is not None:
                if not entry.future.done():
                    return
                try:
                    written = entry.future.result()
                except REFUSED_AS_DATA:
                    log.exception("PostgreSQL refused a batch of %d clicks as data; writing "
                                  "them one by one to dead-letter only the refused ones",
                                  entry.batch.distinct_clicks)
                    entry.future = rewrite(entry)
                    return
                if written.refused:
                    dead.publish(written.refused)
            failpoints.reach("after_redis")
            channel.basic_ack(delivery_tag=entry.batch.last_delivery_tag, multiple=True)
            failpoints.reach("after_ack")
            self._in_flight.popleft()
            self.idle.append(entry.writer)
            acked(entry, written)

    def forget(self) -> int:
        """After a lost channel: drop every batch in flight unacked; returns their messages.

        The writes go on (a stored click is a duplicate when it comes back); each
        writer is free again once its write has ended, so a reconnected worker
        never has two writes on one writer's connections.
        """
        messages = self.messages
        for entry in self._in_flight:
            if entry.future is not None:
                with contextlib.suppress(Exception):
                    entry.future.exception()  # wait for it; the outcome no longer matters
            self.idle.append(entry.writer)
        self._in_flight.clear()
        return messages
