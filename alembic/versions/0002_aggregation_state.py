"""aggregation state: revisions, closes, result parts, reconciliation log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Revisions come from one sequence: a later aggregation always has a higher one.
    op.execute("CREATE SEQUENCE agg.revision_seq")

    # One row per minute the closer has started on; `published_revision` is set
    # only once the broker confirmed the result, which is when the minute counts
    # as closed.
    op.execute("""
        CREATE TABLE agg.minute_closes (
            minute             timestamptz NOT NULL PRIMARY KEY,
            attempts           integer     NOT NULL DEFAULT 0,
            started_revision   bigint,
            published_revision bigint,
            requested_at       timestamptz NOT NULL DEFAULT now(),
            published_at       timestamptz
        )
    """)
    op.execute("""
        CREATE INDEX minute_closes_unpublished_idx ON agg.minute_closes (minute)
        WHERE published_revision IS NULL
    """)

    # The aggregated writer's bookkeeping: which parts of a revision it has
    # committed, so the last part to arrive finalises the revision.
    op.execute("""
        CREATE TABLE agg.minute_parts (
            minute      timestamptz NOT NULL,
            revision    bigint      NOT NULL,
            part        integer     NOT NULL,
            parts       integer     NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (minute, revision, part)
        )
    """)

    # What each reconciliation checked, what differed and what it fixed.
    op.execute("""
        CREATE TABLE agg.reconciliation_runs (
            run_id            bigserial   NOT NULL PRIMARY KEY,
            trigger           text        NOT NULL,
            range_start       timestamptz NOT NULL,
            range_end         timestamptz NOT NULL,
            started_at        timestamptz NOT NULL DEFAULT now(),
            finished_at       timestamptz,
            minutes_checked   integer     NOT NULL DEFAULT 0,
            minutes_differing integer     NOT NULL DEFAULT 0,
            minutes_fixed     integer     NOT NULL DEFAULT 0
        )
    """)
    op.execute("""
        CREATE TABLE agg.reconciliation_findings (
            run_id           bigint      NOT NULL
                REFERENCES agg.reconciliation_runs ON DELETE CASCADE,
            minute           timestamptz NOT NULL,
            raw_clicks       bigint      NOT NULL,
            agg_clicks       bigint,
            raw_distinct_ads integer     NOT NULL,
            agg_distinct_ads integer,
            differing_ads    integer     NOT NULL,
            fixed            boolean     NOT NULL DEFAULT false,
            PRIMARY KEY (run_id, minute)
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS agg.reconciliation_findings")
    op.execute("DROP TABLE IF EXISTS agg.reconciliation_runs")
    op.execute("DROP TABLE IF EXISTS agg.minute_parts")
    op.execute("DROP TABLE IF EXISTS agg.minute_closes")
    op.execute("DROP SEQUENCE IF EXISTS agg.revision_seq")
