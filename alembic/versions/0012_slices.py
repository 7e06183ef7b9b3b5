"""Slices: exact per-(minute, value) counts of every ad, for each configured slice

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

A slice is a dimension of the click (``country``, ``device``) or a combination of
them (``country*device``), as ``FARLOOM_DIMENSIONS`` configures; ``campaign`` and
``advertiser`` are slices too, whose value is the ad's owner in ``agg.ads``.
They are made in PostgreSQL at close, from raw, in the compact layout that
``farloom bench slice-options`` measured best (docs/design.md, "Slices by
dimension"; docs/benchmarks.md, "Where slices are made").

- ``agg.slice_values``: one row per (minute, slice, value): the value's clicks,
  its distinct ads, and every ad of the value with its clicks, as two arrays
  ranked as the top k is (clicks descending, then ad_id in code-point order), so
  the top k is the arrays' head. A combination's value joins its parts with
  ``*`` in the slice's order. Clicks without a value for the slice are in no
  row of it. Partitioned by range of minute like ``agg.ad_clicks_per_minute``
  (``raw.ensure_partition`` makes the partitions; minute retention drops them).
- ``agg.slice_minutes``: one row per (minute, slice): the revision its values
  hold and when it was computed. A later revision replaces every value row of
  the minute and slice in one transaction; an older one is skipped.
- ``agg.reconciliation_slice_findings``: per run, each minute whose slices
  differed from raw (values whose clicks or ranked ads differ) or lacked a slice
  at the minute's published revision, and whether it was recomputed.
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE TABLE agg.slice_minutes (
            minute      timestamptz NOT NULL,
            slice       text COLLATE "C" NOT NULL,
            revision    bigint NOT NULL,
            clicks      bigint NOT NULL CHECK (clicks >= 0),
            computed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (minute, slice)
        )
    """)
    op.execute("""
        CREATE TABLE agg.slice_values (
            minute       timestamptz NOT NULL,
            slice        text COLLATE "C" NOT NULL,
            value        text COLLATE "C" NOT NULL,
            revision     bigint NOT NULL,
            clicks       bigint NOT NULL CHECK (clicks > 0),
            distinct_ads integer NOT NULL CHECK (distinct_ads > 0),
            ad_ids       text[] COLLATE "C" NOT NULL,
            ad_clicks    bigint[] NOT NULL,
            CHECK (cardinality(ad_ids) = distinct_ads AND cardinality(ad_clicks) = distinct_ads),
            PRIMARY KEY (slice, value, minute)
        ) PARTITION BY RANGE (minute)
    """)
    op.execute("CREATE INDEX slice_values_by_minute ON agg.slice_values (minute, slice)")
    op.execute("""
        CREATE TABLE agg.reconciliation_slice_findings (
            run_id           bigint      NOT NULL
                REFERENCES agg.reconciliation_runs ON DELETE CASCADE,
            minute           timestamptz NOT NULL,
            differing_values integer     NOT NULL,
            missing_slices   integer     NOT NULL,
            fixed            boolean     NOT NULL DEFAULT false,
            PRIMARY KEY (run_id, minute)
        )
    """)


def downgrade() -> None:
    # raw.partitions keeps a row per partition ensure_partition made; they go with the table.
    op.execute("DROP TABLE agg.reconciliation_slice_findings")
    op.execute("DELETE FROM raw.partitions WHERE parent = 'agg.slice_values'")
    op.execute("DROP TABLE agg.slice_values")
    op.execute("DROP TABLE agg.slice_minutes")
