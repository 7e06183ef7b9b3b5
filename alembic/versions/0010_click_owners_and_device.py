"""The click's device, campaign and advertiser, and the ads catalog

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

The click contract grows three optional fields (docs/design.md, "The click
message"): ``device``, ``campaign_id`` and ``advertiser_id``. Raw keeps them on
every row, as it keeps ``country``.

- The columns are added without a CHECK: on a partitioned table a new CHECK is
  validated by scanning every partition under an exclusive lock, which at
  production volume stops ingest for as long as the scan takes. The validator
  (farloom_tasks/core/clicks.py) is the rule; PostgreSQL stores what it passed.
- Partitions made from now on get the columns from the parent
  (``raw.ensure_partition`` copies it with ``LIKE``).
- ``agg.ads`` is the ads catalog: an ad belongs to one campaign and one
  advertiser. Clicks fill it, and ``farloom ads import`` fills it too. An owner,
  once known, never changes: a click that contradicts it is dead-lettered as
  ``ad_owner_mismatch``. The API's read-only role reads it (the default
  privileges of migration 0003), to scope advertisers' keys to their own ads.
- Nothing is backfilled: reading every raw partition for its ads would take as
  long as the scan above. Ads of clicks stored before this migration get a row
  when their next click arrives, or from ``farloom ads import``.
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE raw.ad_clicks
            ADD COLUMN device        text,
            ADD COLUMN campaign_id   text COLLATE "C",
            ADD COLUMN advertiser_id text COLLATE "C"
    """)
    op.execute("""
        CREATE TABLE agg.ads (
            ad_id         text COLLATE "C" NOT NULL PRIMARY KEY,
            campaign_id   text COLLATE "C",
            advertiser_id text COLLATE "C",
            first_seen    timestamptz NOT NULL DEFAULT now()
        )
    """)
    op.execute("CREATE INDEX ads_by_advertiser ON agg.ads (advertiser_id, ad_id)")
    op.execute("CREATE INDEX ads_by_campaign ON agg.ads (campaign_id, ad_id)")


def downgrade() -> None:
    op.execute("DROP TABLE agg.ads")
    op.execute("""
        ALTER TABLE raw.ad_clicks
            DROP COLUMN advertiser_id,
            DROP COLUMN campaign_id,
            DROP COLUMN device
    """)
