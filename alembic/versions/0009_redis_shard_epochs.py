"""Redis data epochs per shard, and the shards each loss took

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

On a Redis Cluster one master can lose its data while the others keep theirs,
so Redis keeps one epoch per shard (``farloom:{shard-N}:epoch``, in the shard's
hash tag: on the shard's master) and PostgreSQL remembers each shard's
(``agg.redis_epochs``). A loss names the shards it took
(``agg.redis_loss_shards``), and its repair rebuilds only those
(farloom_tasks/pipeline/redis_loss.py).

- ``agg.redis_epoch`` (one epoch for the whole Redis) goes. The first close
  tick after this migration finds no epoch known for any shard and records
  every shard's as a first run, not a loss: a Redis that lost its data while
  Farloom was being upgraded is not noticed. Reconcile the last
  ``FARLOOM_REDIS_RETENTION_SECONDS`` after upgrading if Redis restarted then.
- ``agg.redis_losses.old_epoch`` / ``new_epoch`` keep the single epochs of the
  losses recorded before this migration and are NULL for later ones, whose
  epochs are per shard. A loss with no shard rows is one recorded before this
  migration: it took every shard.
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE agg.redis_epochs (
            shard      smallint    NOT NULL PRIMARY KEY CHECK (shard >= 0),
            epoch      text        NOT NULL,
            seen_at    timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("""
        CREATE TABLE agg.redis_loss_shards (
            loss_id         bigint   NOT NULL
                            REFERENCES agg.redis_losses (loss_id) ON DELETE CASCADE,
            shard           smallint NOT NULL CHECK (shard >= 0),
            old_epoch       text     NOT NULL,
            new_epoch       text     NOT NULL,
            minutes_rebuilt integer,  -- minutes with raw clicks of this shard, set on repair
            PRIMARY KEY (loss_id, shard)
        )
    """)
    op.execute("ALTER TABLE agg.redis_losses ALTER COLUMN old_epoch DROP NOT NULL, "
               "ALTER COLUMN new_epoch DROP NOT NULL")
    op.execute("DROP TABLE agg.redis_epoch")


def downgrade() -> None:
    op.execute("""
        CREATE TABLE agg.redis_epoch (
            id         smallint    NOT NULL PRIMARY KEY CHECK (id = 1),
            epoch      text        NOT NULL,
            seen_at    timestamptz NOT NULL DEFAULT now()
        )
    """)
    # Per-shard losses keep their shards' epochs in the single columns, as text.
    op.execute("""
        UPDATE agg.redis_losses l SET
            old_epoch = coalesce(l.old_epoch, (
                SELECT string_agg(s.shard || '=' || s.old_epoch, ',' ORDER BY s.shard)
                FROM agg.redis_loss_shards s WHERE s.loss_id = l.loss_id), ''),
            new_epoch = coalesce(l.new_epoch, (
                SELECT string_agg(s.shard || '=' || s.new_epoch, ',' ORDER BY s.shard)
                FROM agg.redis_loss_shards s WHERE s.loss_id = l.loss_id), '')
        WHERE l.old_epoch IS NULL OR l.new_epoch IS NULL
    """)
    op.execute("ALTER TABLE agg.redis_losses ALTER COLUMN old_epoch SET NOT NULL, "
               "ALTER COLUMN new_epoch SET NOT NULL")
    op.execute("DROP TABLE agg.redis_loss_shards")
    op.execute("DROP TABLE agg.redis_epochs")
