"""Migrations go up to head, down to base and up again on a scratch database."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from psycopg2.extras import execute_values

from farloom_tasks.core.partitions import DAY
from farloom_tasks.stores import agg as agg_store
from farloom_tasks.stores import db, partitions
from farloom_tasks.stores import migrations as migrate
from farloom_tasks.stores.agg import int_array, text_array
from tests.support.stack import Stack

SCHEMAS = ("raw", "agg")


@pytest.fixture
def scratch_url(session_stack: Stack) -> Iterator[str]:
    # Its own database, next to the stack's, so down-migrating never disturbs other tests.
    url = sa.make_url(session_stack.settings.database_url).set(
        database=f"farloom_migrations_{uuid.uuid4().hex[:10]}").render_as_string(
        hide_password=False)
    try:
        yield url
    finally:
        db.drop_database(url)


def _objects(url: str) -> set[tuple[str, str]]:
    """Every table, sequence, index and view in Farloom's schemas, plus the Alembic version."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT c.relkind::text, n.nspname || '.' || c.relname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = ANY(:schemas)"), {"schemas": list(SCHEMAS)}).all()
            schemas = conn.execute(sa.text(
                "SELECT 'schema', nspname FROM pg_namespace WHERE nspname = ANY(:schemas)"),
                {"schemas": list(SCHEMAS)}).all()
            has_version = conn.execute(sa.text(
                "SELECT to_regclass('public.alembic_version') IS NOT NULL")).scalar()
            version = (conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
                       if has_version else None)
    finally:
        engine.dispose()
    found = {(str(kind), str(name)) for kind, name in [*rows, *schemas]}
    if version is not None:
        found.add(("version", str(version)))
    return found


def test_migrations_go_up_down_to_base_and_up_again(scratch_url: str) -> None:
    head = ScriptDirectory.from_config(migrate.alembic_config(scratch_url)).get_current_head()

    assert migrate.upgrade(scratch_url) is True  # the database had to be created
    at_head = _objects(scratch_url)
    assert ("version", head) in at_head
    for table in ("raw.redis_outbox", "agg.watermark", "agg.late_minutes",
                  "agg.minute_totals", "agg.top_ads", "agg.minute_closes", "raw.partitions",
                  "agg.ad_clicks_per_hour", "agg.ad_clicks_per_day", "agg.hour_totals",
                  "agg.day_totals", "raw.rejected_clicks"):
        assert ("r", table) in at_head, table
    for table in ("raw.ad_clicks", "agg.ad_clicks_per_minute"):  # partitioned by time
        assert ("p", table) in at_head, table

    migrate.downgrade(scratch_url, "base")
    assert _objects(scratch_url) == set()  # nothing left behind in raw/agg, no version row

    assert migrate.upgrade(scratch_url) is False
    assert _objects(scratch_url) == at_head


def test_every_revision_steps_down_and_back_up_on_its_own(scratch_url: str) -> None:
    scripts = ScriptDirectory.from_config(migrate.alembic_config(scratch_url))
    revisions = [r.revision for r in reversed(list(scripts.walk_revisions()))]
    migrate.upgrade(scratch_url)
    at_head = _objects(scratch_url)
    for previous in reversed(revisions[:-1]):
        migrate.downgrade(scratch_url, previous)
        assert ("version", previous) in _objects(scratch_url)
    migrate.upgrade(scratch_url)
    assert _objects(scratch_url) == at_head


def test_the_schema_accepts_a_click_after_a_round_trip(scratch_url: str) -> None:
    migrate.upgrade(scratch_url)
    migrate.downgrade(scratch_url, "base")
    migrate.upgrade(scratch_url)
    engine = sa.create_engine(scratch_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT raw.ensure_partition('raw.ad_clicks', "
                                 "'2026-11-29T12:03:00Z', '1 hour', 'click_id')"))
            conn.execute(sa.text(
                "INSERT INTO raw.ad_clicks (click_id, ad_id, clicked_at, minute) VALUES "
                "('c1', 'ad', '2026-11-29T12:03:07Z', '2026-11-29T12:03:00Z')"))
            closed = conn.execute(sa.text(
                "SELECT closed_through FROM agg.watermark WHERE id = 1")).one()
        assert closed == (None,)  # the watermark row is seeded again
    finally:
        engine.dispose()


def test_a_new_revision_with_unchanged_counts_updates_per_ad_rows_in_place(
        scratch_url: str) -> None:
    # Migration 0005 leaves half of each page free so that a new revision's UPDATE
    # of a per-ad row stays on its page (heap-only) and touches no index.
    migrate.upgrade(scratch_url)
    ads = [f"ad-{n:05d}" for n in range(2000)]
    counts = [n % 7 + 1 for n in range(2000)]
    minute = 1_795_000_020 - 1_795_000_020 % 60
    engine = sa.create_engine(scratch_url, poolclass=sa.pool.NullPool)
    try:
        conn: Any = engine.raw_connection()
        try:
            with conn.cursor() as cursor:
                partition = partitions.ensure(cursor, partitions.MINUTES, minute, DAY)
                cursor.execute(agg_store._INSERT_ADS, {"m": minute, "rev": 1,
                                                       "ads": text_array(ads),
                                                       "clicks": int_array(counts)})
            conn.commit()
            with conn.cursor() as cursor:
                cursor.execute(agg_store._UPSERT_ADS, {"m": minute, "rev": 2,
                                                       "ads": text_array(ads),
                                                       "clicks": int_array(counts)})
                cursor.execute("SELECT pg_stat_get_xact_tuples_updated(c.oid), "
                               "pg_stat_get_xact_tuples_hot_updated(c.oid) "
                               "FROM pg_class c WHERE c.oid = %s::regclass", (partition,))
                updated, heap_only = cursor.fetchone()
            conn.commit()
        finally:
            conn.close()
    finally:
        engine.dispose()
    assert updated == len(ads)
    assert heap_only >= 0.95 * len(ads), (heap_only, updated)


# A populated install at 0005: clicks over three UTC days (hours 22:00 to 01:00
# across two midnights, an hour's edges included), every optional field on most,
# and per-minute results with their bookkeeping.
POPULATED_FROM = datetime(2026, 11, 27, 22, 0, tzinfo=UTC)
POPULATED_HOURS = (0, 1, 2, 25, 26, 27)  # hours after POPULATED_FROM that hold clicks
UNCHANGED_TABLES = ("agg.minute_totals", "agg.top_ads", "agg.minute_closes",
                    "agg.late_minutes", "agg.watermark", "raw.redis_outbox")


def _populated_rows(seed: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(raw rows, per-minute rows) as 0005 stores them, generated from ``seed``."""
    rng = random.Random(seed)
    clicks: list[tuple[Any, ...]] = []
    for hour in POPULATED_HOURS:
        start = POPULATED_FROM + timedelta(hours=hour)
        edges = [timedelta(0), timedelta(minutes=59, seconds=59, microseconds=999_999)]
        for n, offset in enumerate(edges + [timedelta(microseconds=rng.randrange(3_600_000_000))
                                            for _ in range(150)]):
            at = start + offset
            full = n % 5 != 4
            clicks.append((str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                           f"ad-{rng.randrange(30)}", at, at.replace(second=0, microsecond=0),
                           f"user-{n}" if full else None,
                           rng.choice(["192.0.2.1", "2001:db8::7"]) if full else None,
                           rng.choice(["FR", "JP", "BR"]) if full else None,
                           at + timedelta(seconds=rng.uniform(0.01, 3))))
    counts: list[tuple[Any, ...]] = []
    for minute in sorted(rng.sample(range(0, 28 * 60), 120)):
        at = POPULATED_FROM + timedelta(minutes=minute)
        for ad in rng.sample(range(40), rng.randint(1, 12)):
            counts.append((at, f"ad-{ad}", rng.randint(1, 500), rng.randint(1, 9)))
    return clicks, counts


def _load_populated_install(url: str, clicks: list[tuple[Any, ...]],
                            counts: list[tuple[Any, ...]]) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        conn: Any = engine.raw_connection()
        try:
            with conn.cursor() as cursor:
                execute_values(cursor, "INSERT INTO raw.ad_clicks (click_id, ad_id, clicked_at, "
                               "minute, user_id, ip, country, ingested_at) VALUES %s", clicks)
                execute_values(cursor, "INSERT INTO agg.ad_clicks_per_minute "
                               "(minute, ad_id, clicks, revision) VALUES %s", counts)
                cursor.execute("""
                    INSERT INTO agg.minute_totals (minute, clicks, distinct_ads, revision,
                                                   computed_at)
                    SELECT minute, sum(clicks), count(*), max(revision), minute + interval '65 s'
                    FROM agg.ad_clicks_per_minute GROUP BY minute;
                    INSERT INTO agg.top_ads (minute, rank, ad_id, clicks, revision)
                    SELECT minute, row_number() OVER (PARTITION BY minute
                                                      ORDER BY clicks DESC, ad_id),
                           ad_id, clicks, revision FROM agg.ad_clicks_per_minute;
                    INSERT INTO agg.minute_closes (minute, attempts, started_revision,
                                                   published_revision)
                    SELECT minute, 1, max(revision), max(revision)
                    FROM agg.ad_clicks_per_minute GROUP BY minute;
                    INSERT INTO agg.late_minutes (minute, late_clicks)
                    SELECT minute, 3 FROM agg.minute_totals ORDER BY minute LIMIT 2;
                    UPDATE agg.watermark SET closed_through = '2026-11-29T01:59:00Z';
                    INSERT INTO raw.redis_outbox (batch_id, increments, min_minute, max_minute)
                    VALUES ('5b0c7a4e-0d7e-4b8e-9a57-0c8d7a0e1f11', '{"0": {"1": {"ad": 1}}}',
                            '2026-11-29T01:00:00Z', '2026-11-29T01:00:00Z');
                """)
            conn.commit()
        finally:
            conn.close()
    finally:
        engine.dispose()


def _rows(url: str, table: str) -> Counter[str]:
    """Every row of ``table`` as PostgreSQL prints it (all columns, exact values)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SET TIME ZONE 'UTC'")
            return Counter(str(row) for (row,) in conn.exec_driver_sql(
                f"SELECT t::text FROM {table} AS t"))
    finally:
        engine.dispose()


def _query(url: str, statement: str) -> list[Any]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return list(conn.exec_driver_sql(statement).all())
    finally:
        engine.dispose()


RAW_COLUMNS = "click_id, ad_id, clicked_at, minute, user_id, ip, country, ingested_at"
MINUTE_COLUMNS = "minute, ad_id, clicks, revision"


def _loaded(url: str, table: str, columns: str) -> Counter[tuple[Any, ...]]:
    """Every row of ``table`` as Python values, to compare with what the test loaded."""
    return Counter(tuple(row) for row in _query(url, f"SELECT {columns} FROM {table}"))


def _assert_partitioned_as_loaded(url: str, clicks: list[tuple[Any, ...]],
                                  counts: list[tuple[Any, ...]]) -> None:
    """Every loaded row in its partition, each partition exactly its range, the rollups
    equal to sums of the loaded per-minute rows."""
    assert _loaded(url, "raw.ad_clicks", RAW_COLUMNS) == Counter(clicks)
    assert _loaded(url, "agg.ad_clicks_per_minute", MINUTE_COLUMNS) == Counter(counts)

    clicks_per_hour = Counter(row[3].replace(minute=0) for row in clicks)
    raw_partitions = _query(url, """
        SELECT p.range_start, p.range_end, count(c.click_id),
               count(c.click_id) FILTER (WHERE c.minute >= p.range_start
                                         AND c.minute < p.range_end)
        FROM raw.partitions p
        LEFT JOIN raw.ad_clicks c ON c.tableoid = to_regclass(p.partition_name)
        WHERE p.parent = 'raw.ad_clicks' GROUP BY 1, 2 ORDER BY 1""")
    assert [tuple(row) for row in raw_partitions] == [
        (hour, hour + timedelta(hours=1), n, n) for hour, n in sorted(clicks_per_hour.items())]
    minute_days = sorted({row[0].replace(hour=0, minute=0) for row in counts})
    assert [tuple(row) for row in _query(
        url, "SELECT range_start, range_end FROM raw.partitions "
        "WHERE parent = 'agg.ad_clicks_per_minute' ORDER BY range_start")] == [
        (day, day + timedelta(days=1)) for day in minute_days]
    for parent in ("raw.ad_clicks", "agg.ad_clicks_per_minute"):
        attached = _query(url, "SELECT inhrelid::regclass::text FROM pg_inherits "
                          f"WHERE inhparent = '{parent}'::regclass ORDER BY 1")
        listed = _query(url, "SELECT partition_name FROM raw.partitions "
                        f"WHERE parent = '{parent}' ORDER BY 1")
        assert attached == listed

    for grain, cut in (("hour", {"minute": 0}), ("day", {"hour": 0, "minute": 0})):
        per_ad: Counter[tuple[datetime, str]] = Counter()
        totals: Counter[datetime] = Counter()
        for minute, ad_id, n, _ in counts:
            per_ad[(minute.replace(**cut), ad_id)] += n
            totals[minute.replace(**cut)] += n
        assert Counter({(at, ad): int(n) for at, ad, n in _query(
            url, f"SELECT {grain}, ad_id, clicks FROM agg.ad_clicks_per_{grain}")}) == per_ad
        assert Counter({at: int(n) for at, n in _query(
            url, f"SELECT {grain}, clicks FROM agg.{grain}_totals")}) == totals


def test_a_populated_install_migrates_to_partitions_and_back_losing_no_row(
        scratch_url: str) -> None:
    migrate.upgrade(scratch_url, "0005")
    clicks, counts = _populated_rows(20261202)
    assert len({row[0] for row in clicks}) == len(clicks)  # 0005's key: one row per click id
    _load_populated_install(scratch_url, clicks, counts)
    before = {table: _rows(scratch_url, table)
              for table in ("raw.ad_clicks", "agg.ad_clicks_per_minute", *UNCHANGED_TABLES)}
    assert _loaded(scratch_url, "raw.ad_clicks", RAW_COLUMNS) == Counter(clicks)

    migrate.upgrade(scratch_url)
    _assert_partitioned_as_loaded(scratch_url, clicks, counts)
    for table in UNCHANGED_TABLES:
        assert _rows(scratch_url, table) == before[table], table

    migrate.downgrade(scratch_url, "0005")
    kinds = dict(_query(scratch_url, "SELECT oid::regclass::text, relkind::text FROM pg_class "
                        "WHERE oid IN ('raw.ad_clicks'::regclass, "
                        "'agg.ad_clicks_per_minute'::regclass)"))
    assert kinds == {"raw.ad_clicks": "r", "agg.ad_clicks_per_minute": "r"}
    for table, rows in before.items():
        assert _rows(scratch_url, table) == rows, table

    migrate.upgrade(scratch_url)
    _assert_partitioned_as_loaded(scratch_url, clicks, counts)


def test_downgrading_keeps_the_earliest_click_of_an_id_stored_in_two_periods(
        scratch_url: str) -> None:
    # One table has one dedup key: a click id reused in another hour (two clicks
    # while partitioned) is one click again after the downgrade, the earliest.
    migrate.upgrade(scratch_url)
    engine = sa.create_engine(scratch_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            for at in ("2026-11-29T12:03:07Z", "2026-11-29T13:03:07Z", "2026-11-29T11:59:59Z"):
                conn.execute(sa.text("SELECT raw.ensure_partition('raw.ad_clicks', :at, "
                                     "'1 hour', 'click_id')"), {"at": at})
                conn.execute(sa.text(
                    "INSERT INTO raw.ad_clicks (click_id, ad_id, clicked_at, minute) "
                    "VALUES ('reused', 'ad', :at, date_trunc('minute', "
                    "CAST(:at AS timestamptz), 'UTC'))"), {"at": at})
            conn.execute(sa.text(
                "INSERT INTO raw.ad_clicks (click_id, ad_id, clicked_at, minute) VALUES "
                "('other', 'ad', '2026-11-29T13:00:00Z', '2026-11-29T13:00:00Z')"))
    finally:
        engine.dispose()
    assert _query(scratch_url, "SELECT count(*) FROM raw.ad_clicks") == [(4,)]

    migrate.downgrade(scratch_url, "0005")
    assert sorted(_query(scratch_url, "SELECT click_id, clicked_at FROM raw.ad_clicks")) == [
        ("other", datetime(2026, 11, 29, 13, 0, tzinfo=UTC)),
        ("reused", datetime(2026, 11, 29, 11, 59, 59, tzinfo=UTC))]
