"""API keys: who may read the query API, and which advertiser's data

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

The API answers only requests that carry a key (docs/design.md, "The query
API"). ``auth.api_keys`` holds one row per key: its public id, the SHA-256 of
its secret (never the secret: ``farloom api-key create`` prints it once), and
whom it serves: an advertiser, or an administrator who sees everything.

- A schema of its own, not ``agg``: the API's role reads every table of ``agg``
  by default (migration 0003), and the key table is not customer data. The role
  gets SELECT on this table alone: it checks keys and can change none.
- A revoked key keeps its row (``revoked_at``), so ``farloom api-key list``
  shows what was revoked and when.
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

API_ROLE = "farloom_api"


def upgrade() -> None:
    op.execute("CREATE SCHEMA auth")
    op.execute("""
        CREATE TABLE auth.api_keys (
            key_id        text COLLATE "C" NOT NULL PRIMARY KEY,
            secret_sha256 bytea NOT NULL CHECK (length(secret_sha256) = 32),
            advertiser_id text COLLATE "C",
            is_admin      boolean NOT NULL,
            label         text NOT NULL DEFAULT '',
            created_at    timestamptz NOT NULL DEFAULT now(),
            revoked_at    timestamptz,
            CHECK (is_admin = (advertiser_id IS NULL))
        )
    """)
    op.execute(f"GRANT USAGE ON SCHEMA auth TO {API_ROLE}")
    op.execute(f"GRANT SELECT ON auth.api_keys TO {API_ROLE}")


def downgrade() -> None:
    op.execute(f"REVOKE ALL ON SCHEMA auth FROM {API_ROLE}")
    op.execute("DROP SCHEMA auth CASCADE")
