"""The aggregated side of PostgreSQL (adapter): minute results into ``agg.*``.

``write_part`` runs up to three short transactions, each of which first
skips the part if the minute already holds this revision or a newer one
finalised (a duplicate, or an older revision arriving late):
1. *top*: replaces the minute's top ads if they are of an older revision.
   Every part carries its revision's whole (exact) top k, so the ranking is
   published by whichever part arrives first, in milliseconds, without
   waiting for the per-ad counts.
2. *part*: upserts the part's per-ad counts, never over a row of a newer
   revision, and records the part in ``agg.minute_parts`` (idempotent on its
   key); if that makes the revision complete, step 3 follows.
3. *finalise*: upserts the minute's totals (``agg.minute_totals.revision`` is
   the minute's finalised revision), deletes per-ad rows of older revisions
   (ads a replay dropped) and the revision's part bookkeeping.

Every statement that changes per-ad rows (steps 2 and 3) also adds each ad's
change, new count minus old, to the hour and day rollups, in the same
statement (stores/rollups.py): at every commit each rollup row is the sum of
the per-minute rows it covers.

Concurrency, per minute, with two advisory locks (any number of writers):
- the *rows* lock is held shared by step 2, so parts of one minute are
  upserted in parallel, and exclusively by step 3, which therefore waits for
  every upsert in flight, and after which any upsert of an older revision
  sees the newer totals and is skipped: no stale row can outlive a finalise;
- the *book* lock serialises steps 1 and the bookkeeping end of step 2, so the
  top is replaced by one writer at a time, and of the parts committing side by
  side exactly the last one counts them all (each count is a fresh snapshot
  taken after the previous holder committed).
Locks are always taken rows-then-book, so writers cannot deadlock on them; row
locks in the order per-ad rows, hour rows, day rows, hour total, day total, each
table's rows sorted by ad id (stores/minute_locks.py has the advisory keys).
Each step is idempotent, so a crash between or inside steps is repaired by
the redelivery: the writer acks only after ``write_part`` returned.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from typing import Any

import psycopg2
import psycopg2.errors
from sqlalchemy.engine import Engine

from farloom_tasks.core.aggregates import InvalidAggregate, MinuteResultPart
from farloom_tasks.core.partitions import DAY
from farloom_tasks.core.topk import top_k
from farloom_tasks.stores import rollups
from farloom_tasks.stores.db import OwnedConnection
from farloom_tasks.stores.minute_locks import BOOK_LOCK_CLASS, ROWS_LOCK_CLASS, minute_lock_key
from farloom_tasks.stores.partitions import MINUTES, PartitionCache, PartitionDropped

_INT4_MAX = 2**31 - 1
_INT8_MAX = 2**63 - 1

_LOCK = "SELECT pg_advisory_xact_lock(%s, %s)"
_LOCK_SHARED = "SELECT pg_advisory_xact_lock_shared(%s, %s)"

_FINALISED_REVISION = (
    "SELECT revision FROM agg.minute_totals WHERE minute = to_timestamp(%s)"
)

# A later revision (or a part seen before) over rows that may exist. PostgreSQL 15
# cannot return a row's old values from an upsert, so the old rows are locked
# and read first (in ad order, like every writer), then updated, and the ads they
# lacked inserted: each ad's change is new minus old, exactly. An ad another
# writer inserted after this statement's snapshot is neither in ``old`` nor
# inserted (DO NOTHING): ``raced`` counts those, and the caller runs the
# statement again, when they are visible (``_store_ads``).
_UPSERT_ADS = rollups.with_rollups("""
incoming AS MATERIALIZED (
    SELECT a COLLATE "C" AS ad_id, c AS clicks
    FROM unnest(%(ads)s::text[], %(clicks)s::bigint[]) AS x(a, c)
), old AS MATERIALIZED (
    SELECT ad_id, clicks FROM agg.ad_clicks_per_minute
    WHERE minute = to_timestamp(%(m)s) AND ad_id = ANY (ARRAY(SELECT ad_id FROM incoming))
    ORDER BY ad_id FOR UPDATE
), locked AS (
    SELECT count(*) AS n FROM old
), updated AS (
    UPDATE agg.ad_clicks_per_minute AS t SET clicks = i.clicks, revision = %(rev)s
    FROM incoming i JOIN old o USING (ad_id)
    WHERE (SELECT n FROM locked) >= 0
      AND t.minute = to_timestamp(%(m)s) AND t.ad_id = i.ad_id AND t.revision <= %(rev)s
    RETURNING t.ad_id, t.clicks - o.clicks AS clicks
), inserted AS (
    INSERT INTO agg.ad_clicks_per_minute (minute, ad_id, clicks, revision)
    SELECT to_timestamp(%(m)s), ad_id, clicks, %(rev)s FROM incoming i
    WHERE (SELECT n FROM locked) >= 0 AND NOT EXISTS (SELECT 1 FROM old o WHERE o.ad_id = i.ad_id)
    ORDER BY ad_id
    ON CONFLICT (minute, ad_id) DO NOTHING
    RETURNING ad_id, clicks
), delta AS (
    SELECT ad_id, clicks FROM updated UNION ALL SELECT ad_id, clicks FROM inserted
)""", "SELECT count(*) FROM incoming i WHERE NOT EXISTS (SELECT 1 FROM old o "
      "WHERE o.ad_id = i.ad_id)) - (SELECT count(*) FROM inserted")

# The first aggregation of a minute (no finalised revision, no other revision's
# parts, this part not seen) cannot meet an existing row: a plain INSERT then
# skips the cost of the upsert's speculative insertion (how much: docs/benchmarks.md,
# "Figures behind the code"), and every inserted row is its ad's whole change.
_INSERT_ADS = rollups.with_rollups("""
inserted AS (
    INSERT INTO agg.ad_clicks_per_minute (minute, ad_id, clicks, revision)
    SELECT to_timestamp(%(m)s), a, c, %(rev)s
    FROM unnest(%(ads)s::text[], %(clicks)s::bigint[]) AS x(a, c)
    RETURNING ad_id, clicks
), delta AS (
    SELECT ad_id, clicks FROM inserted
)""")

_OTHER_PARTS = """
SELECT EXISTS (SELECT 1 FROM agg.minute_parts WHERE minute = to_timestamp(%s)
               AND (revision <> %s OR part = %s))
"""

_RECORD_PART = """
SELECT pg_advisory_xact_lock(%s, %s);
INSERT INTO agg.minute_parts (minute, revision, part, parts)
VALUES (to_timestamp(%s), %s, %s, %s)
ON CONFLICT (minute, revision, part) DO NOTHING;
SELECT count(*) FROM agg.minute_parts WHERE minute = to_timestamp(%s) AND revision = %s
"""

_TOP_REVISION = "SELECT max(revision) FROM agg.top_ads WHERE minute = to_timestamp(%s)"

_REPLACE_TOP = """
DELETE FROM agg.top_ads WHERE minute = to_timestamp(%s);
INSERT INTO agg.top_ads (minute, rank, ad_id, clicks, revision)
SELECT to_timestamp(%s), r, a, c, %s
FROM unnest(%s::int[], %s::text[], %s::bigint[]) AS x(r, a, c)
"""

_COUNT_PARTS = (
    "SELECT count(*) FROM agg.minute_parts WHERE minute = to_timestamp(%s) AND revision = %s"
)

# The revision's totals, then its per-ad rows alone: the rows of older revisions
# (ads a replay dropped) go, and so does their share of the rollups.
_FINALISE = """
INSERT INTO agg.minute_totals AS t (minute, clicks, distinct_ads, revision, computed_at)
VALUES (to_timestamp(%(m)s), %(clicks)s, %(distinct)s, %(rev)s, to_timestamp(%(computed)s))
ON CONFLICT (minute) DO UPDATE
SET clicks = excluded.clicks, distinct_ads = excluded.distinct_ads,
    revision = excluded.revision, computed_at = excluded.computed_at
WHERE t.revision <= excluded.revision;
DELETE FROM agg.minute_parts WHERE minute = to_timestamp(%(m)s) AND revision <= %(rev)s;
""" + rollups.with_rollups("""
gone AS (
    DELETE FROM agg.ad_clicks_per_minute
    WHERE minute = to_timestamp(%(m)s) AND revision < %(rev)s
    RETURNING ad_id, clicks
), delta AS (
    SELECT ad_id, -clicks AS clicks FROM gone
)""")


class Outcome(enum.Enum):
    WRITTEN = "written"  # the part is stored; its revision still misses parts
    FINALISED = "finalised"  # this part completed its revision, now the minute's result
    STALE = "stale"  # the minute already holds this revision or a newer one: nothing changed
    COMPLETE = "complete"  # (internal) every part is stored; the revision awaits its finalise


def check_writable(part: MinuteResultPart) -> None:
    """Raise InvalidAggregate if PostgreSQL could not store ``part`` as it is.

    ``aggregates.decode`` checks the contract; this checks what the columns can
    hold, so that bad input is dead-lettered rather than failing a transaction
    again on every redelivery.
    """
    if part.revision > _INT8_MAX or part.clicks > _INT8_MAX:
        raise InvalidAggregate("revision and clicks must fit in 64 signed bits")
    if part.parts > _INT4_MAX or part.distinct_ads > _INT4_MAX:
        raise InvalidAggregate("parts and distinct_ads must fit in 32 signed bits")
    for name, pairs in (("top", part.top), ("ads", part.ads)):
        seen: set[str] = set()
        for ad_id, clicks in pairs:
            if not ad_id or "\x00" in ad_id:
                raise InvalidAggregate(f"{name} holds an empty ad_id or one with a NUL character")
            if clicks > _INT8_MAX:
                raise InvalidAggregate(f"{name} holds a click count beyond 64 signed bits")
            if ad_id in seen:
                raise InvalidAggregate(f"{name} holds ad_id {ad_id[:64]!r} twice")
            if not ad_id.isascii():
                try:
                    ad_id.encode("utf-8")
                except UnicodeEncodeError:
                    raise InvalidAggregate(f"{name} holds an ad_id that is not UTF-8") from None
            seen.add(ad_id)


def ranked_top(part: MinuteResultPart) -> list[tuple[int, str, int]]:
    """(rank, ad_id, clicks) of the part's top, re-ranked so the order never depends
    on the producer: clicks descending, then ad_id in code-point order."""
    best = top_k(part.top, part.k if part.k > 0 else len(part.top))
    return [(rank, ad_id, clicks) for rank, (ad_id, clicks) in enumerate(best, start=1)]


def text_array(values: Iterable[str]) -> str:
    """A PostgreSQL text[] literal. One string parameter parses far faster than
    psycopg2's ARRAY[...] expression of one constant per element."""
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for v in values) + "}"


def int_array(values: Iterable[int]) -> str:
    return "{" + ",".join(str(int(v)) for v in values) + "}"


class AggStore:
    """Owns one PostgreSQL connection for a single-threaded aggregated writer."""

    def __init__(self, engine: Engine, partition_seconds: int = DAY) -> None:
        self.engine = engine
        self._db = OwnedConnection(engine)
        # The minute's partition of agg.ad_clicks_per_minute, made before the part's
        # transactions if the periodic task has not made it yet.
        self.partitions = PartitionCache(engine, MINUTES, partition_seconds)

    def close(self) -> None:
        self._db.close()
        self.partitions.close()

    def write_part(self, part: MinuteResultPart) -> Outcome:
        """Store one part (see the module docstring); never returns COMPLETE.

        Raises DatabaseUnavailable on a lost connection (retry the same part:
        every step is idempotent), and InvalidAggregate when PostgreSQL refuses
        the part's data (dead-letter it: it would fail again).
        """
        try:
            self.partitions.ensure_for([part.minute])
        except PartitionDropped as exc:
            # Minute retention dropped this minute's rows (a late click for a minute
            # older than FARLOOM_MINUTE_RETENTION_DAYS): storing the part would make
            # the dropped partition again, and it would fail on every redelivery.
            raise InvalidAggregate(f"beyond minute retention: {exc}") from exc
        if self._run(part, self._write_top) is Outcome.STALE:
            return Outcome.STALE
        outcome = self._run(part, self._write_part)
        if outcome is Outcome.COMPLETE:
            return self._run(part, self._finalise)
        return outcome

    def _run(self, part: MinuteResultPart, work: Callable[[Any, MinuteResultPart], Outcome]
             ) -> Outcome:
        try:
            return self._db.run(lambda cursor: work(cursor, part))
        except (psycopg2.DataError, psycopg2.IntegrityError) as exc:
            # The part itself is the problem: retrying would fail forever.
            raise InvalidAggregate(f"PostgreSQL refused it: {exc}".strip()) from exc

    @staticmethod
    def _lock_and_check(cursor: Any, part: MinuteResultPart, statement: str,
                        lock_class: int) -> bool:
        """Take one of the minute's locks; True if the part is stale."""
        cursor.execute(statement, minute_lock_key(part.minute, lock_class))
        cursor.execute(_FINALISED_REVISION, (part.minute,))
        row = cursor.fetchone()
        return row is not None and int(row[0]) >= part.revision

    @staticmethod
    def _store_ads(cursor: Any, part: MinuteResultPart) -> None:
        # Sorted, the index insertions walk each B-tree in order, and writers
        # upserting the same ads side by side lock them in the same order.
        ads = sorted(part.ads)
        params = {"m": part.minute, "rev": part.revision,
                  "ads": text_array(a for a, _ in ads), "clicks": int_array(c for _, c in ads)}
        # One savepoint, set with the first statement (no round trip of its own):
        # the plain insert or an upsert that raced is undone to it and redone.
        cursor.execute(_FINALISED_REVISION, (part.minute,))
        if cursor.fetchone() is None:
            cursor.execute(_OTHER_PARTS, (part.minute, part.revision, part.part))
            if not cursor.fetchone()[0]:
                try:
                    cursor.execute("SAVEPOINT ads;" + _INSERT_ADS, params)
                    rollups.drop_zeros(cursor, part.minute, cursor.fetchone())
                    return
                except psycopg2.errors.UniqueViolation:
                    # A writer of another revision, a redelivered duplicate, or parts
                    # that overlap (a producer bug): the upsert settles it.
                    cursor.execute("ROLLBACK TO SAVEPOINT ads")
            else:
                cursor.execute("SAVEPOINT ads")
        else:
            cursor.execute("SAVEPOINT ads")
        # Each run that races makes the ads it raced on visible to the next, and
        # rows of a minute are not deleted while its rows lock is held shared:
        # this ends within one run per ad.
        while True:
            cursor.execute(_UPSERT_ADS, params)
            row = cursor.fetchone()
            if not row[3]:
                rollups.drop_zeros(cursor, part.minute, row)
                return
            # Another writer inserted some of these ads after this statement's
            # snapshot: its change to the rollups is unknown. Undo, and run again.
            cursor.execute("ROLLBACK TO SAVEPOINT ads")

    def _write_top(self, cursor: Any, part: MinuteResultPart) -> Outcome:
        m, rev = part.minute, part.revision
        if self._lock_and_check(cursor, part, _LOCK, BOOK_LOCK_CLASS):
            return Outcome.STALE
        cursor.execute(_TOP_REVISION, (m,))
        (top_revision,) = cursor.fetchone()
        if top_revision is None or top_revision < rev:
            top = ranked_top(part)
            cursor.execute(_REPLACE_TOP, (m, m, rev, int_array(r for r, _, _ in top),
                                          text_array(a for _, a, _ in top),
                                          int_array(c for _, _, c in top)))
        return Outcome.WRITTEN

    def _write_part(self, cursor: Any, part: MinuteResultPart) -> Outcome:
        m, rev = part.minute, part.revision
        if self._lock_and_check(cursor, part, _LOCK_SHARED, ROWS_LOCK_CLASS):
            return Outcome.STALE
        if part.ads:
            self._store_ads(cursor, part)
        cursor.execute(_RECORD_PART, (*minute_lock_key(m, BOOK_LOCK_CLASS),
                                      m, rev, part.part, part.parts, m, rev))
        (received,) = cursor.fetchone()
        return Outcome.COMPLETE if received >= part.parts else Outcome.WRITTEN

    def _finalise(self, cursor: Any, part: MinuteResultPart) -> Outcome:
        m, rev = part.minute, part.revision
        if self._lock_and_check(cursor, part, _LOCK, ROWS_LOCK_CLASS):
            return Outcome.STALE  # a duplicate of this part finalised it meanwhile
        cursor.execute(_COUNT_PARTS, (m, rev))
        if cursor.fetchone()[0] < part.parts:
            return Outcome.WRITTEN  # unreachable: parts rows go only with a finalise
        cursor.execute(_FINALISE, {"m": m, "rev": rev, "clicks": part.clicks,
                                   "distinct": part.distinct_ads, "computed": part.computed_at})
        rollups.drop_zeros(cursor, m, cursor.fetchone())
        return Outcome.FINALISED
