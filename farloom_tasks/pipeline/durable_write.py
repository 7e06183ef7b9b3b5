"""Exactly-once counting: PostgreSQL commit, then idempotent Redis apply, via the outbox.

Why this is exact under a crash at any instruction:
- Before the commit, nothing is stored; the unacked messages are redelivered.
- After the commit, the clicks are in ``raw`` and their increments in the
  outbox. Redelivered messages are now duplicates (``ON CONFLICT DO NOTHING``)
  and add no increments, while the outbox row is applied by whoever drains it
  next: this worker on restart, any other worker, or the minute closer.
- Applying is idempotent per (batch, shard) in Redis, so draining a row that
  was already applied, or applying it twice concurrently, adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from farloom_tasks import failpoints
from farloom_tasks.core.clicks import Click
from farloom_tasks.core.messages import DeadLetter
from farloom_tasks.stores.raw import CommittedBatch, RawStore
from farloom_tasks.stores.redis_counts import RedisCounts


class DurableWriter:
    """Writes click batches for one single-threaded worker."""

    def __init__(self, raw: RawStore, counts: RedisCounts) -> None:
        self.raw = raw
        self.counts = counts
        # Outbox rows applied to Redis but not yet deleted: the next batch's
        # transaction deletes them, saving a round trip per batch.
        self._applied_not_cleared: list[str] = []

    def write(self, clicks: Sequence[Click], rejected: Sequence[DeadLetter] = (), *,
              rejected_at: float = 0.0) -> CommittedBatch:
        """Make ``clicks`` durable in PostgreSQL and counted in Redis, and ``rejected``
        durable in the rejected-click ledger (in the same transaction).

        Returns only when both are done; the caller may then ack. Raises a
        TransientError when either store is unreachable; the caller retries
        the same clicks, which is safe (see the module docstring).
        """
        batch = self.raw.commit_batch(clicks, self._applied_not_cleared, rejected,
                                      rejected_at=rejected_at)
        self._applied_not_cleared = []
        failpoints.reach("after_commit")
        if batch.increments:
            self.counts.apply_batch(batch.batch_id, batch.increments)
            self._applied_not_cleared.append(batch.batch_id)
        return batch

    def flush_cleanup(self) -> None:
        """Delete the outbox rows this writer has applied (on shutdown or when idle)."""
        if self._applied_not_cleared:
            self.raw.clear_outbox(self._applied_not_cleared)
            self._applied_not_cleared = []


def drain_outbox(raw: RawStore, counts: RedisCounts, limit: int = 1000) -> int:
    """Apply every pending outbox row to Redis, then delete it. Returns rows drained.

    Safe to run anywhere, any time, concurrently with writers: application is
    idempotent. The minute closer runs it before reading a minute from Redis.
    """
    drained = 0
    while True:
        pending = raw.pending_outbox(limit)
        if not pending:
            return drained
        for row in pending:
            counts.apply_batch(row.batch_id, row.increments)
        raw.clear_outbox([row.batch_id for row in pending])
        drained += len(pending)
        if len(pending) < limit:
            return drained
