"""The ingest side of PostgreSQL (adapter): raw rows, the Redis outbox, late marks.

One call to ``commit_batch`` is one transaction that
1. takes the watermark lock in shared mode and reads the closed watermark,
2. settles the batch's ads in the ads catalog (stores/ads_catalog.py) when this
   worker's cache of known owners cannot judge them alone: a click contradicting
   its ad's owner is not stored but rejected as ``ad_owner_mismatch``
   (core/ad_owners.py),
3. inserts the other clicks, skipping click ids already stored (the dedup key),
4. records the new clicks' Redis increments in ``raw.redis_outbox``,
5. marks minutes at or before the watermark as late,
6. records the batch's rejected elements, its owner mismatches among them, in
   the rejected-click ledger (stores/rejected_clicks.py), so that they are
   counted exactly once too,
7. deletes outbox rows of earlier batches that Redis has since applied.
Nothing here is visible to anyone until the commit, so a crash anywhere leaves
either all of it or none of it; the cache of known owners learns a batch's
owners only once it is committed.

The module functions read ``raw.ad_clicks`` for replay and Redis-loss repair,
in the caller's transaction (its cursor).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg2
from psycopg2.errors import UndefinedTable
from psycopg2.extras import Json
from sqlalchemy.engine import Engine

from farloom_tasks.core import increments as inc
from farloom_tasks.core.ad_owners import KnownOwners, Owner, judge, mismatch_letter
from farloom_tasks.core.clicks import Click
from farloom_tasks.core.messages import DeadLetter
from farloom_tasks.core.partitions import HOUR
from farloom_tasks.stores import ads_catalog, rejected_clicks
from farloom_tasks.stores.db import WATERMARK_LOCK_KEY, OwnedConnection
from farloom_tasks.stores.partitions import RAW, PartitionCache

# What PostgreSQL says about clicks it will not store (a gap in validation): the
# ingest worker dead-letters them. A missing table or a lost permission is not the
# data's fault and is not among these.
REFUSED_AS_DATA: tuple[type[Exception], ...] = (psycopg2.DataError, psycopg2.IntegrityError)
# raw.* does not exist: the database was never migrated.
NotMigrated = UndefinedTable

# The batch travels as one JSON document: psycopg2 adapts Python lists element by
# element, which costs the worker far more CPU than orjson encoding the whole batch
# once (figures: docs/benchmarks.md, "Figures behind the code").
# The conflict is on the click's partition's unique index on click_id (a partitioned
# table's own unique keys would have to include the partition key): the dedup
# window is the partition.
# A click's custom dimensions (an object, or null) become its jsonb column, NULL when
# it names none (json_to_recordset turns a JSON null into SQL NULL).
# What comes back is the new clicks counted per (ad, minute), grouped by PostgreSQL:
# a row per stored click would cost the worker a tuple and a dict update each.
_INSERT_CLICKS = """
WITH stored AS (
    INSERT INTO raw.ad_clicks (click_id, ad_id, clicked_at, minute, user_id, ip, country,
                               device, campaign_id, advertiser_id, dimensions)
    SELECT c, a, ts, date_trunc('minute', ts, 'UTC'), u, i::inet, co, d, ca, av, dm
    FROM (
        SELECT c, a, to_timestamp(t) AS ts, u, i, co, d, ca, av, dm
        FROM json_to_recordset(%s::json)
            AS x(c text, a text, t float8, u text, i text, co text, d text, ca text, av text,
                 dm jsonb)
    ) AS batch
    ON CONFLICT DO NOTHING
    RETURNING ad_id, minute
)
SELECT ad_id, extract(epoch FROM minute)::bigint, count(*) FROM stored GROUP BY ad_id, minute
"""

_READ_WATERMARK = (
    f"SELECT pg_advisory_xact_lock_shared({WATERMARK_LOCK_KEY}); "
    "SELECT extract(epoch FROM closed_through)::bigint FROM agg.watermark WHERE id = 1"
)

_MARK_LATE = """
INSERT INTO agg.late_minutes AS l (minute, late_clicks)
SELECT to_timestamp(m), n FROM unnest(%s::bigint[], %s::bigint[]) AS x(m, n)
ON CONFLICT (minute) DO UPDATE
SET late_clicks = l.late_clicks + excluded.late_clicks,
    mark_seq = nextval('agg.late_mark_seq'),
    last_marked_at = now()
"""


@dataclass(frozen=True)
class CommittedBatch:
    """What one committed transaction stored, and what Redis still has to apply."""

    batch_id: str
    increments: inc.Increments
    new_clicks: int
    duplicates: int
    late_clicks: int
    late_minutes: tuple[int, ...] = field(default=())
    rejections_recorded: int = 0  # ledger rows this batch added (0 for a redelivery's)
    # Clicks not stored because they contradict their ad's owner, already in the ledger.
    owner_mismatches: tuple[DeadLetter, ...] = field(default=())


@dataclass(frozen=True)
class PendingOutbox:
    batch_id: str
    increments: inc.Increments


class RawStore:
    """Owns one PostgreSQL connection for a single-threaded ingest worker."""

    def __init__(self, engine: Engine, shard_count: int,
                 partition_seconds: int = HOUR) -> None:
        self.engine = engine
        self.shard_count = shard_count
        self._db = OwnedConnection(engine)
        self._run = self._db.run
        # Partitions are made ahead by a periodic task; this makes one on demand
        # (historical imports, a task that has not run yet) before the batch's own
        # transaction, which therefore never waits on a partition being made.
        self.partitions = PartitionCache(engine, RAW, partition_seconds)
        # Exact because an owner never changes (core/ad_owners.py); so a wrong owner
        # fixed by SQL needs the ingest workers restarted.
        self.known_owners = KnownOwners()

    def close(self) -> None:
        self._db.close()
        self.partitions.close()

    def commit_batch(self, clicks: Sequence[Click], applied_batch_ids: Sequence[str] = (),
                     rejected: Sequence[DeadLetter] = (), *,
                     rejected_at: float = 0.0) -> CommittedBatch:
        """Store ``clicks`` and ``rejected`` durably with their outbox row (see the
        module docstring); ``rejected_at`` (epoch s) dates the new ledger rows.

        Raises stores.partitions.PartitionDropped if a click falls in a range that
        retention dropped (the caller dead-letters it as beyond retention).
        """
        batch_id = str(uuid.uuid4())
        self.partitions.ensure_for([c.clicked_at for c in clicks])

        def work(cursor: Any) -> CommittedBatch:
            recorded = 0
            if not clicks:
                # No watermark lock: these rows say nothing about any minute.
                if rejected:
                    recorded = rejected_clicks.record(cursor, rejected, rejected_at)
                if applied_batch_ids:
                    cursor.execute("DELETE FROM raw.redis_outbox "
                                   "WHERE batch_id = ANY(%s::uuid[])", (list(applied_batch_ids),))
                return CommittedBatch(batch_id=batch_id, increments={}, new_clicks=0,
                                      duplicates=0, late_clicks=0,
                                      rejections_recorded=recorded)
            cursor.execute(_READ_WATERMARK)
            row = cursor.fetchone()
            closed_through = row[0] if row else None
            # After the watermark lock, as every row lock an ingest transaction takes:
            # a row lock held while queueing for it behind a closer could deadlock.
            stored, mismatches = self._settle_owners(cursor, clicks, learned)
            counted: list[tuple[str, int, int]] = []
            if stored:
                cursor.execute(_INSERT_CLICKS, (_batch_document(stored),))
                counted = cursor.fetchall()
            if rejected or mismatches:
                recorded = rejected_clicks.record(cursor, [*rejected, *mismatches],
                                                  rejected_at)
            increments = inc.group_counts(counted, self.shard_count)
            new_clicks = sum(clicks for _, _, clicks in counted)
            late: dict[int, int] = {}
            if closed_through is not None:
                late = {m: n for m, n in inc.clicks_per_minute(increments).items()
                        if m <= closed_through}
            if increments:
                minutes = inc.minutes_of(increments)
                cursor.execute(
                    "INSERT INTO raw.redis_outbox (batch_id, increments, min_minute, max_minute) "
                    "VALUES (%s, %s, to_timestamp(%s), to_timestamp(%s))",
                    (batch_id, Json(inc.to_json(increments), dumps=_dumps),
                     min(minutes), max(minutes)),
                )
            if late:
                # Sorted so that concurrent workers lock the same rows in the same order.
                minutes_late = sorted(late)
                cursor.execute(_MARK_LATE, (minutes_late, [late[m] for m in minutes_late]))
            if applied_batch_ids:
                cursor.execute("DELETE FROM raw.redis_outbox WHERE batch_id = ANY(%s::uuid[])",
                               (list(applied_batch_ids),))
            return CommittedBatch(
                batch_id=batch_id, increments=increments, new_clicks=new_clicks,
                duplicates=len(stored) - new_clicks, late_clicks=sum(late.values()),
                late_minutes=tuple(sorted(late)), rejections_recorded=recorded,
                owner_mismatches=tuple(mismatches),
            )

        learned: dict[str, Owner] = {}
        committed = self._run(work)
        self.known_owners.learn(learned)
        return committed

    def _settle_owners(self, cursor: Any, clicks: Sequence[Click], learned: dict[str, Owner],
                       ) -> tuple[list[Click], list[DeadLetter]]:
        """The clicks to store and the dead letters of those contradicting their ad's
        owner; fills ``learned`` with the catalog rows this transaction settled."""
        cached = self.known_owners.owners
        wanted = self.known_owners.ads_to_look_up(clicks)
        locked: dict[str, Owner] = {}
        if wanted:
            # New rows get the owner this batch alone would give them, judged in its order
            # (for an ad with a row already, the proposal is not used).
            proposed = judge([c for c in clicks if c.ad_id in wanted], {}).owners
            locked = ads_catalog.lock_owners(cursor, proposed).owners
        judgement = judge(clicks, locked, cached)
        if wanted:
            settled = {ad: judgement.owners[ad] for ad in wanted}
            ads_catalog.fill_owners(cursor, locked, settled)
            learned.update(settled)
        return judgement.accepted, [mismatch_letter(c, o) for c, o in judgement.mismatched]

    def clear_outbox(self, batch_ids: Sequence[str]) -> None:
        if not batch_ids:
            return
        self._run(lambda cursor: cursor.execute(
            "DELETE FROM raw.redis_outbox WHERE batch_id = ANY(%s::uuid[])", (list(batch_ids),)))

    def pending_outbox(self, limit: int = 1000) -> list[PendingOutbox]:
        """Outbox rows whose Redis application is not yet confirmed, oldest first."""

        def work(cursor: Any) -> list[PendingOutbox]:
            cursor.execute("SELECT batch_id::text, increments FROM raw.redis_outbox "
                           "ORDER BY created_at LIMIT %s", (limit,))
            return [PendingOutbox(batch_id, inc.from_json(doc)) for batch_id, doc in
                    cursor.fetchall()]

        return self._run(work)


def ad_counts_in_pages(cursor: Any, minute: int,
                       page_rows: int) -> Iterator[list[tuple[str, int]]]:
    """``minute``'s (ad_id, clicks), one row per ad, ``page_rows`` at a time.

    One grouped query (index ``ad_clicks_minute_ad_idx``); it runs when the
    first page is asked for.
    """
    cursor.execute("SELECT ad_id, count(*) FROM raw.ad_clicks "
                   "WHERE minute = to_timestamp(%s) GROUP BY ad_id", (minute,))
    while rows := cursor.fetchmany(page_rows):
        yield rows


def minutes_with_clicks(cursor: Any, first: int, last: int) -> list[int]:
    """The minutes of [first, last] that have raw rows, oldest first."""
    # One index probe per minute rather than a scan of the window's rows.
    cursor.execute("""
            SELECT extract(epoch FROM g)::bigint FROM generate_series(
                to_timestamp(%s), to_timestamp(%s), interval '1 minute') AS g
            WHERE EXISTS (SELECT 1 FROM raw.ad_clicks WHERE minute = g)
            ORDER BY g
        """, (first, last))
    return [int(r[0]) for r in cursor.fetchall()]


def _batch_document(clicks: Sequence[Click]) -> str:
    return orjson.dumps([
        {"c": c.click_id, "a": c.ad_id, "t": c.clicked_at, "u": c.user_id, "i": c.ip,
         "co": c.country, "d": c.device, "ca": c.campaign_id, "av": c.advertiser_id,
         "dm": c.dimensions}
        for c in clicks]).decode("utf-8")


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode("utf-8")
