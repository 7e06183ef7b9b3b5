"""Half-full pages for the per-ad counts, so that new revisions update in place

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

Every new revision of a minute (late clicks, a replay, a reconciliation fix)
rewrites each of the minute's per-ad rows with its new revision number, and
most counts do not change. With full pages every such UPDATE puts the new row
version on another page and adds an entry to each of the table's three
indexes. With half of each page free, PostgreSQL keeps the new version on the
same page as a heap-only tuple: no index is touched, and the aggregated writer
finishes a replayed revision much sooner after the merge (measured with `farloom
bench aggregate`: docs/benchmarks.md, "Figures behind the code").

The cost is disk: the heap of agg.ad_clicks_per_minute takes about twice the
space (its indexes do not change). Pages written before this migration keep
their old fill; VACUUM FULL or pg_repack rewrites them.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PER_AD_FILLFACTOR = 50  # percent of each heap page filled by inserts


def upgrade() -> None:
    op.execute(f"ALTER TABLE agg.ad_clicks_per_minute SET (fillfactor = {PER_AD_FILLFACTOR})")


def downgrade() -> None:
    op.execute("ALTER TABLE agg.ad_clicks_per_minute RESET (fillfactor)")
