"""the query API's read-only role (SELECT on schema agg only) and its window index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

The role has LOGIN but no password: locally it connects through trust/peer
authentication; in production the operator sets its password (or certificate)
out of band and passes it in FARLOOM_API_DATABASE_URL. Roles are cluster-wide,
so creating it is idempotent (several databases on one server share it).
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

API_ROLE = "farloom_api"


def upgrade() -> None:
    # Parallel migrations of different databases on one server race here, hence
    # the exception handler. The session defaults are belt and braces: even a
    # grant added by mistake later cannot make its sessions write, and a runaway
    # dashboard query is cut off.
    op.execute(f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{API_ROLE}') THEN
                CREATE ROLE {API_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
                    NOINHERIT NOREPLICATION;
                ALTER ROLE {API_ROLE} SET default_transaction_read_only = on;
                ALTER ROLE {API_ROLE} SET statement_timeout = '10s';
                -- A 60-minute top-N hashes every ad of its window; 4MB (the default)
                -- spills that hash to disk (docs/benchmarks.md, "Figures behind the code").
                ALTER ROLE {API_ROLE} SET work_mem = '64MB';
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END
        $$
    """)
    op.execute(f"REVOKE ALL ON SCHEMA raw FROM {API_ROLE}")
    op.execute(f"REVOKE CREATE ON SCHEMA public FROM {API_ROLE}")
    op.execute(f"GRANT USAGE ON SCHEMA agg TO {API_ROLE}")
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA agg TO {API_ROLE}")
    op.execute(f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA agg TO {API_ROLE}")
    # Tables later migrations add to agg (created by the migrating role) are
    # readable without each migration remembering to grant.
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA agg GRANT SELECT ON TABLES TO {API_ROLE}")

    # GET /v1/ads/top sums a window of minutes: an index-only scan over this
    # reads (ad_id, clicks) without touching the heap (the PK lacks clicks).
    op.execute("""
        CREATE INDEX IF NOT EXISTS ad_clicks_per_minute_window_idx
            ON agg.ad_clicks_per_minute (minute) INCLUDE (ad_id, clicks)
    """)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS agg.ad_clicks_per_minute_window_idx")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA agg REVOKE SELECT ON TABLES FROM {API_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA agg FROM {API_ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA agg FROM {API_ROLE}")
    op.execute(f"REVOKE ALL ON SCHEMA agg FROM {API_ROLE}")
    # The role itself stays when another database on the server still grants it
    # something (e.g. a parallel test database); dropping it there would fail.
    op.execute(f"""
        DO $$
        BEGIN
            DROP ROLE IF EXISTS {API_ROLE};
        EXCEPTION WHEN dependent_objects_still_exist THEN
            NULL;
        END
        $$
    """)
