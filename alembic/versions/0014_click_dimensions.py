"""Custom click dimensions: a click's named extra dimension values, kept in raw

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04

Issue 13 asks ``farloom import`` to map any CSV column onto a dimension (the
TalkingData sample's ``os``, for one). The contract's own dimensions
(``country``, ``device``) are columns; a custom one is a name a deployment
chooses, so its values live in one nullable ``jsonb`` object per click,
``raw.ad_clicks.dimensions`` (name -> value, both strings). The validator
(core/clicks.py) is the rule for names and values, as for the columns of
migration 0010: adding the column is nullable and without a default or a CHECK,
so it changes the catalog only and rewrites no partition.
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE raw.ad_clicks ADD COLUMN dimensions jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE raw.ad_clicks DROP COLUMN dimensions")
