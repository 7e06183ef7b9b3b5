"""Redis data epochs and the losses detected between them

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

Redis holds the per-minute counts but may lose them (restart without
persistence, FLUSHDB). It keeps a data epoch (redis_counts.EPOCH_KEY) that is
written once per Redis lifetime; PostgreSQL remembers the last epoch seen, so a
new epoch means Redis lost its data (farloom_tasks/pipeline/redis_loss.py).
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row: the Redis epoch the closer last saw.
    op.execute("""
        CREATE TABLE agg.redis_epoch (
            id         smallint    NOT NULL PRIMARY KEY CHECK (id = 1),
            epoch      text        NOT NULL,
            seen_at    timestamptz NOT NULL DEFAULT now()
        )
    """)
    # One row per detected loss; repaired_at is set once every affected minute was
    # rebuilt from raw. repair_started_at is the lease of the task repairing it.
    op.execute("""
        CREATE TABLE agg.redis_losses (
            loss_id              bigserial   PRIMARY KEY,
            detected_at          timestamptz NOT NULL DEFAULT now(),
            old_epoch            text        NOT NULL,
            new_epoch            text        NOT NULL,
            window_start         timestamptz NOT NULL,
            window_end           timestamptz NOT NULL,
            repair_started_at    timestamptz,
            repaired_at          timestamptz,
            minutes_rebuilt      integer,
            minutes_reaggregated integer
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS agg.redis_losses")
    op.execute("DROP TABLE IF EXISTS agg.redis_epoch")
