"""Slice rollups: exact per-(hour|day, slice, value, ad) counts of the slices' minutes

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04

Issue 13 asks slices to be "rolled into hours and days like the rest". These are
the slices' counterpart of ``agg.ad_clicks_per_hour`` / ``_per_day`` and
``agg.hour_totals`` / ``day_totals`` (migration 0006), with the same invariant:
at every commit each row is the sum of the ``agg.slice_values`` minutes it covers.

- ``agg.slice_ad_clicks_per_hour`` / ``_per_day``: per (slice, value, hour|day,
  ad), the ad's clicks in that value over the period. Keyed by (slice, value,
  period, ad_id) and carrying the clicks, so a window's sum per ad for one value
  is an index-only range scan of that value alone.
- ``agg.slice_totals_per_hour`` / ``_per_day``: per (slice, value, hour|day), the
  value's clicks (what per-campaign and per-advertiser totals over a range read).
- ``agg.reconciliation_slice_rollup_findings``: per run, each (grain, period,
  slice) whose rollup rows differed from the minutes they cover, and whether it
  was recomputed.

The slice writer keeps them by difference in the transaction that replaces a
minute's slice rows. An install with slices is filled from ``agg.slice_values``.
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

GRAINS = ("hour", "day")
ROLLUP_FILLFACTOR = 70  # as migration 0006: a row is updated once per minute of its period


def upgrade() -> None:
    for grain in GRAINS:
        op.execute(f"""
            CREATE TABLE agg.slice_ad_clicks_per_{grain} (
                slice    text        COLLATE "C" NOT NULL,
                value    text        COLLATE "C" NOT NULL,
                {grain}  timestamptz NOT NULL,
                ad_id    text        COLLATE "C" NOT NULL,
                clicks   bigint      NOT NULL,
                PRIMARY KEY (slice, value, {grain}, ad_id) INCLUDE (clicks)
            ) WITH (fillfactor = {ROLLUP_FILLFACTOR})
        """)
        op.execute(f"""
            CREATE TABLE agg.slice_totals_per_{grain} (
                slice    text        COLLATE "C" NOT NULL,
                value    text        COLLATE "C" NOT NULL,
                {grain}  timestamptz NOT NULL,
                clicks   bigint      NOT NULL,
                PRIMARY KEY (slice, value, {grain}) INCLUDE (clicks)
            ) WITH (fillfactor = {ROLLUP_FILLFACTOR})
        """)
        op.execute(f"""
            INSERT INTO agg.slice_ad_clicks_per_{grain} (slice, value, {grain}, ad_id, clicks)
            SELECT v.slice, v.value, date_trunc('{grain}', v.minute, 'UTC'), a.ad_id,
                   sum(a.clicks)
            FROM agg.slice_values v,
                 unnest(v.ad_ids, v.ad_clicks) AS a(ad_id, clicks)
            GROUP BY 1, 2, 3, 4
        """)
        op.execute(f"""
            INSERT INTO agg.slice_totals_per_{grain} (slice, value, {grain}, clicks)
            SELECT slice, value, date_trunc('{grain}', minute, 'UTC'), sum(clicks)
            FROM agg.slice_values GROUP BY 1, 2, 3
        """)
    op.execute("""
        CREATE TABLE agg.reconciliation_slice_rollup_findings (
            run_id           bigint      NOT NULL
                REFERENCES agg.reconciliation_runs ON DELETE CASCADE,
            grain            text        NOT NULL CHECK (grain IN ('hour', 'day')),
            period           timestamptz NOT NULL,
            slice            text        COLLATE "C" NOT NULL,
            differing_rows   integer     NOT NULL,
            fixed            boolean     NOT NULL DEFAULT false,
            PRIMARY KEY (run_id, grain, period, slice)
        )
    """)


def downgrade() -> None:
    op.execute("DROP TABLE agg.reconciliation_slice_rollup_findings")
    for grain in GRAINS:
        op.execute(f"DROP TABLE agg.slice_totals_per_{grain}")
        op.execute(f"DROP TABLE agg.slice_ad_clicks_per_{grain}")
