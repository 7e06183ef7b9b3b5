"""Migrations go up to head, down to base and up again on a scratch database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from farloom_tasks.core.partitions import DAY
from farloom_tasks.stores import agg as agg_store
from farloom_tasks.stores import partitions
from farloom_tasks.stores import db
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
                  "agg.day_totals"):
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
