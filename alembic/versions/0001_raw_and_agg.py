"""raw and agg schemas: clicks, the Redis outbox, the watermark, late minutes, results

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS raw")
    op.execute("CREATE SCHEMA IF NOT EXISTS agg")

    # One row per distinct click; click_id is the deduplication key.
    # `minute` is stored (not derived per query) so that aggregation and replay
    # read one minute through the (minute, ad_id) index without touching the heap.
    op.execute("""
        CREATE TABLE raw.ad_clicks (
            click_id    text        NOT NULL PRIMARY KEY,
            ad_id       text        COLLATE "C" NOT NULL,
            clicked_at  timestamptz NOT NULL,
            minute      timestamptz NOT NULL,
            user_id     text,
            ip          inet,
            country     char(2),
            ingested_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT ad_clicks_minute_aligned
                CHECK (minute = date_trunc('minute', clicked_at, 'UTC'))
        )
    """)
    op.execute('CREATE INDEX ad_clicks_minute_ad_idx ON raw.ad_clicks (minute, ad_id)')

    # Transactional outbox: the Redis increments of a committed batch, written in
    # the same transaction as its rows. A row lives until Redis has applied it.
    op.execute("""
        CREATE TABLE raw.redis_outbox (
            batch_id    uuid        NOT NULL PRIMARY KEY,
            increments  jsonb       NOT NULL,
            min_minute  timestamptz NOT NULL,
            max_minute  timestamptz NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        )
    """)

    # The newest minute closed for ingest. A click at or before it is late.
    op.execute("""
        CREATE TABLE agg.watermark (
            id             smallint    NOT NULL PRIMARY KEY DEFAULT 1 CHECK (id = 1),
            closed_through timestamptz,
            updated_at     timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("INSERT INTO agg.watermark (id, closed_through) VALUES (1, NULL)")

    # Minutes that received clicks after they were closed and await re-aggregation.
    # mark_seq changes on every new mark, so a re-aggregation clears only the mark it saw.
    op.execute("CREATE SEQUENCE agg.late_mark_seq")
    op.execute("""
        CREATE TABLE agg.late_minutes (
            minute          timestamptz NOT NULL PRIMARY KEY,
            late_clicks     bigint      NOT NULL,
            mark_seq        bigint      NOT NULL DEFAULT nextval('agg.late_mark_seq'),
            first_marked_at timestamptz NOT NULL DEFAULT now(),
            last_marked_at  timestamptz NOT NULL DEFAULT now()
        )
    """)

    op.execute("""
        CREATE TABLE agg.minute_totals (
            minute       timestamptz NOT NULL PRIMARY KEY,
            clicks       bigint      NOT NULL,
            distinct_ads integer     NOT NULL,
            revision     bigint      NOT NULL,
            computed_at  timestamptz NOT NULL
        )
    """)
    op.execute("""
        CREATE TABLE agg.ad_clicks_per_minute (
            minute   timestamptz NOT NULL,
            ad_id    text        COLLATE "C" NOT NULL,
            clicks   bigint      NOT NULL,
            revision bigint      NOT NULL,
            PRIMARY KEY (minute, ad_id)
        )
    """)
    op.execute(
        "CREATE INDEX ad_clicks_per_minute_ad_idx ON agg.ad_clicks_per_minute (ad_id, minute)"
    )
    op.execute("""
        CREATE TABLE agg.top_ads (
            minute   timestamptz NOT NULL,
            rank     integer     NOT NULL CHECK (rank >= 1),
            ad_id    text        COLLATE "C" NOT NULL,
            clicks   bigint      NOT NULL,
            revision bigint      NOT NULL,
            PRIMARY KEY (minute, rank)
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS agg.top_ads")
    op.execute("DROP TABLE IF EXISTS agg.ad_clicks_per_minute")
    op.execute("DROP TABLE IF EXISTS agg.minute_totals")
    op.execute("DROP TABLE IF EXISTS agg.late_minutes")
    op.execute("DROP SEQUENCE IF EXISTS agg.late_mark_seq")
    op.execute("DROP TABLE IF EXISTS agg.watermark")
    op.execute("DROP TABLE IF EXISTS raw.redis_outbox")
    op.execute("DROP TABLE IF EXISTS raw.ad_clicks")
    op.execute("DROP SCHEMA IF EXISTS agg")
    op.execute("DROP SCHEMA IF EXISTS raw")
