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
  is an index-only range scan of that value alone. A second index,
  ``slice_ad_clicks_per_{hour,day}_ranked`` on (slice, value, period, clicks
  DESC, ad_id), gives each (slice, value, period) its rows in the top's rank
  order, so a filtered top reads a built period by its head (its first rows and
  the clicks of the next, docs/design.md §2.10) instead of every row of it.
- ``agg.slice_totals_per_hour`` / ``_per_day``: per (slice, value, hour|day), the
  value's clicks (what per-campaign and per-advertiser totals over a range read).
- ``agg.slice_rollup_periods``: per (grain, period, slice), the mark that the
  period's rollup rows of that slice are built (``built_at``) and when
  reconciliation last compared them in full with what they are made of
  (``fully_checked_at``, NULL until then). Rollup rows of a period exist only
  once it is marked, and only then are they kept equal to their minutes.
- ``agg.reconciliation_slice_rollup_findings``: per run, each (grain, period,
  slice) whose rollup rows differed from the minutes they cover, and whether it
  was recomputed.

Each hour is built once, in bulk, when its minutes are closed and sliced, and each
day from its 24 built hours (farloom_tasks/pipeline/slice_rollup_builds.py); after
that the slice writer adds a late revision's difference to the built periods. An
install with slices gets its past periods built by the periodic sweep, so nothing is
filled here.
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

GRAINS = ("hour", "day")
# Room for the heap-only updates a late revision makes to a built period's rows.
ROLLUP_FILLFACTOR = 70


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
        # ad_id is COLLATE "C" already: the order is the contract's (clicks
        # descending, then ad_id by code point), and every column is in the key,
        # so a head is an index-only scan of its first rows.
        op.execute(f"""
            CREATE INDEX slice_ad_clicks_per_{grain}_ranked
                ON agg.slice_ad_clicks_per_{grain} (slice, value, {grain}, clicks DESC, ad_id)
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
    op.execute("""
        CREATE TABLE agg.slice_rollup_periods (
            grain            text        NOT NULL CHECK (grain IN ('hour', 'day')),
            period           timestamptz NOT NULL,
            slice            text        COLLATE "C" NOT NULL,
            built_at         timestamptz NOT NULL DEFAULT now(),
            fully_checked_at timestamptz,
            PRIMARY KEY (grain, period, slice)
        )
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
    op.execute("DROP TABLE agg.slice_rollup_periods")
    for grain in GRAINS:
        op.execute(f"DROP TABLE agg.slice_totals_per_{grain}")
        op.execute(f"DROP TABLE agg.slice_ad_clicks_per_{grain}")
