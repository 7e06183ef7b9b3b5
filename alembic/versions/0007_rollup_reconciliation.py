"""Reconciliation of the hour and day rollups: what each run found and fixed

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Reconciliation checks each hour and day rollup (migration 0006) against the sum
of its minute rows and recomputes the ones that differ. Its findings are per
hour or day, not per minute, so they get a table of their own beside
agg.reconciliation_findings; each run counts them in three new columns.
Findings go with their run (ON DELETE CASCADE), as the minute findings do.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE agg.reconciliation_runs
            ADD COLUMN rollups_checked   integer NOT NULL DEFAULT 0,
            ADD COLUMN rollups_differing integer NOT NULL DEFAULT 0,
            ADD COLUMN rollups_fixed     integer NOT NULL DEFAULT 0
    """)
    op.execute("""
        CREATE TABLE agg.reconciliation_rollup_findings (
            run_id        bigint      NOT NULL
                REFERENCES agg.reconciliation_runs ON DELETE CASCADE,
            grain         text        NOT NULL CHECK (grain IN ('hour', 'day')),
            period        timestamptz NOT NULL,
            rollup_clicks bigint,
            minute_clicks bigint      NOT NULL,
            differing_ads integer     NOT NULL,
            fixed         boolean     NOT NULL DEFAULT false,
            PRIMARY KEY (run_id, grain, period)
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE agg.reconciliation_rollup_findings")
    op.execute("""
        ALTER TABLE agg.reconciliation_runs
            DROP COLUMN rollups_checked,
            DROP COLUMN rollups_differing,
            DROP COLUMN rollups_fixed
    """)
