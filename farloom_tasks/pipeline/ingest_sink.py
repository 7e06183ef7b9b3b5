"""The ingest worker's durable sink: PostgreSQL and Redis for one writer thread, retried.

Each writer thread owns one ``DurableSink`` and alone uses its connections.
``write`` is ``durable_write``: one PostgreSQL transaction (raw rows, the
batch's Redis outbox row, late marks), then the idempotent Redis apply. The
failure rules (docs/design.md, "Failure rules"):

- A lost PostgreSQL or Redis connection is retried with capped exponential
  backoff, then the outbox is drained before the batch is written again: a
  commit may have succeeded before Redis failed, and whatever a crash left in
  the outbox reaches Redis before anything else is acked. The batch stays
  unacked meanwhile. A stopping worker gives up after RETRIES_AFTER_STOP
  attempts (``Abandoned``), acking nothing.
- A batch PostgreSQL refuses as data (a gap in validation) raises one of
  ``raw.REFUSED_AS_DATA``; the caller then writes it again click by click
  (``write_one_by_one``) so that only the refused clicks are dead-lettered
  ("unstorable"). A missing table or a lost permission is not the data's fault
  and propagates: the worker stops without acking.
- A batch's rejected elements (its dead letters) enter the rejected-click
  ledger in the batch's own transaction (stores/rejected_clicks.py); a batch
  holding only rejected elements is one such transaction too. Written click by
  click, the batch records them first, in a transaction of their own, and each
  click PostgreSQL refuses enters the ledger before its batch is acked.
- A click contradicting its ad's owner in the ads catalog is not stored: the
  batch's transaction records it in the ledger (``ad_owner_mismatch``) and the
  write returns it among ``refused``, dead-lettered before the batch is acked;
  its batch mates are stored.
- A batch holding a click whose raw partition retention dropped meanwhile
  (``partitions.PartitionDropped``: validation refuses such clicks, so only a
  batch validated just before the drop meets it) is written again click by
  click too: those clicks are dead-lettered ("beyond_retention"), never retried,
  and their batch mates are stored.

Why concurrent writers are still exact: two batches in flight are two
transactions like those of two workers side by side. Each inserts its click
ids in sorted order with ``ON CONFLICT DO NOTHING``, so a click id in both is
stored once (the later transaction waits for the earlier and skips it) and the
two can never deadlock; only the one that stored a click carries its Redis
increment in its outbox row.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import orjson

from farloom_tasks import failpoints
from farloom_tasks.core.backoff import Backoff
from farloom_tasks.core.clicks import Click, Rejection
from farloom_tasks.core.message_identity import click_identity
from farloom_tasks.core.messages import DeadLetter
from farloom_tasks.core.partitions import HOUR
from farloom_tasks.errors import FarloomError, TransientError
from farloom_tasks.metrics import ingest as metrics
from farloom_tasks.metrics.registry import service_label
from farloom_tasks.pipeline.durable_write import DurableWriter, drain_outbox
from farloom_tasks.settings import Settings
from farloom_tasks.stores import db, redis_client, redis_counts
from farloom_tasks.stores.partitions import PartitionDropped
from farloom_tasks.stores.raw import REFUSED_AS_DATA, RawStore

log = logging.getLogger("farloom.ingest")
T = TypeVar("T")

# The ingest worker's one retry schedule, for its stores and its broker connection;
# callers jitter it (random.uniform(0.5, 1)) so that restarted workers do not stampede.
RETRY_BACKOFF = Backoff(initial=0.1, ceiling=10.0)
RETRIES_AFTER_STOP = 3  # attempts a stopping worker still makes to write its last batch


class Abandoned(FarloomError):
    """A stopping worker gave up on a store that stayed unavailable; nothing was acked."""


@dataclasses.dataclass
class Written:
    """What the durable write of one batch reported."""

    new_clicks: int = 0
    duplicates: int = 0  # clicks already stored by an earlier batch
    late_clicks: int = 0  # clicks stored for a minute already closed
    # "ad_owner_mismatch", "unstorable" and "beyond_retention": in the ledger already,
    # to be dead-lettered before the batch is acked
    refused: list[DeadLetter] = dataclasses.field(default_factory=list)


class DurableSink:
    """The writer thread's side: PostgreSQL and Redis, retried until they answer."""

    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self.stop = stop
        self.engine = db.make_engine(settings.database_url, pool_size=1)
        self.raw = RawStore(self.engine, settings.shard_count,
                            settings.raw_partition_hours * HOUR)
        self.counts = redis_counts.RedisCounts(redis_client.connect(settings),
                                               settings.redis_retention_seconds)
        self.writer = DurableWriter(self.raw, self.counts)
        self.cleanup_due = False  # outbox rows applied to Redis but not yet deleted
        self._must_drain = True

    def _retrying(self, work: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                if self._must_drain:
                    # Whatever a crash or the last failure left in the outbox reaches
                    # Redis before anything else is acked.
                    drained = drain_outbox(self.raw, self.counts)
                    if drained:
                        log.info("applied %d pending outbox rows to Redis", drained)
                    self._must_drain = False
                return work()
            except TransientError as exc:
                self._must_drain = True
                metrics.TRANSIENT_ERRORS.labels(service_label(exc)).inc()
                if self.stop.is_set() and attempt >= RETRIES_AFTER_STOP:
                    raise Abandoned(f"stopping while {exc}") from exc
                delay = RETRY_BACKOFF.delay(attempt, random.uniform(0.5, 1.0))
                log.warning("%s; retrying in %.1f s", exc, delay)
                time.sleep(delay)
                attempt += 1
            except BaseException:
                # A commit may have succeeded before Redis failed: drain before the next write.
                self._must_drain = True
                raise

    def recover(self) -> None:
        """Drain whatever the outbox holds into Redis (at start and after a reconnect)."""
        self._must_drain = True
        self._retrying(lambda: None)

    def write(self, clicks: Sequence[Click], rejected: Sequence[DeadLetter] = ()) -> Written:
        """Store ``clicks`` and the ledger rows of ``rejected`` durably, in one transaction;
        one of raw.REFUSED_AS_DATA if PostgreSQL refuses them.

        Clicks of a range retention dropped are dead-lettered (see the module docstring).
        """
        try:
            return self._write_batch(clicks, rejected)
        except PartitionDropped:
            log.warning("a batch of %d clicks holds clicks of a raw partition retention "
                        "dropped; writing it click by click", len(clicks))
            return self.write_one_by_one(clicks, rejected)

    def _write_batch(self, clicks: Sequence[Click],
                     rejected: Sequence[DeadLetter] = ()) -> Written:
        def attempt() -> Written:
            failpoints.reach("before_commit")
            batch = self.writer.write(clicks, rejected, rejected_at=time.time())
            return Written(batch.new_clicks, batch.duplicates, batch.late_clicks,
                           list(batch.owner_mismatches))

        written = self._retrying(attempt)
        self.cleanup_due = True
        return written

    def write_one_by_one(self, clicks: Sequence[Click],
                         rejected: Sequence[DeadLetter] = ()) -> Written:
        """Isolate the clicks PostgreSQL refuses as data, or whose partition retention
        dropped; store every other one, and every rejection in the ledger."""
        total = Written()
        if rejected:
            self._record_rejections(rejected)
        unrecorded: list[DeadLetter] = []
        for click in clicks:
            try:
                one = self._write_one(click)
            except REFUSED_AS_DATA as exc:  # dead-letter it, never retry it
                unrecorded.append(_dead_letter(click, "unstorable", str(exc)))
                continue
            except PartitionDropped as exc:
                unrecorded.append(_dead_letter(
                    click, "beyond_retention", f"{exc}; the click was not stored"))
                continue
            total.new_clicks += one.new_clicks
            total.duplicates += one.duplicates
            total.late_clicks += one.late_clicks
            total.refused.extend(one.refused)  # owner mismatches, ledgered in their write
        if unrecorded:
            self._record_rejections(unrecorded)
            total.refused.extend(unrecorded)
        return total

    def _record_rejections(self, rejected: Sequence[DeadLetter]) -> None:
        try:
            self._write_batch([], rejected)
        except REFUSED_AS_DATA as exc:
            # Refused again, the batch would be rewritten forever: stop without acking.
            raise FarloomError(f"PostgreSQL refuses the rejected-click ledger's rows: "
                               f"{exc}") from exc

    def _write_one(self, click: Click) -> Written:
        try:
            return self._write_batch([click])
        except REFUSED_AS_DATA:
            # PostgreSQL finds no partition for a click whose partition this process
            # still believes in when retention has just dropped it: look it up afresh,
            # which raises PartitionDropped in that case.
            self.raw.partitions.forget()
            return self._write_batch([click])

    def cleanup(self) -> None:
        """Delete the outbox rows already applied to Redis (when the worker is idle)."""
        self._retrying(self.writer.flush_cleanup)
        self.cleanup_due = False

    def close(self) -> None:
        self.raw.close()
        self.engine.dispose()
        self.counts.client.close()


def _dead_letter(click: Click, code: str, detail: str) -> DeadLetter:
    return DeadLetter(orjson.dumps(dataclasses.asdict(click)), Rejection(code, detail[:500]),
                      source_id=click_identity(click.click_id, click.clicked_at))
