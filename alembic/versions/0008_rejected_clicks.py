"""raw.rejected_clicks: the exactly-once ledger of rejected click elements

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

Every element the ingest worker rejects (and every message it rejects whole,
unparsed) is one row, written in the PostgreSQL transaction of its batch's valid
clicks and before its message is acked (docs/design.md, "The rejected-click
ledger"). The dead-letter queue stays at least once; this table is the count.

The key is (source_id, element_index):
- ``source_id`` is the source message's identity (core/message_identity.py):
  ``amqp:<message_id>`` when the publisher set an AMQP message_id (Farloom's
  publishers do), otherwise ``sha256:<hex>`` of the message's body with its
  ``timestamp`` property and ``x-farloom-published-at-us`` header. A redelivery
  carries the same message, so it finds its rows and adds none (ON CONFLICT DO
  NOTHING). Two messages that differ in any of those are two sets of rows; two
  publishes of the same bytes with neither message_id nor timestamp are, by
  this rule, one message.
- ``element_index`` is the element's position in the message's array; 0 for a
  message holding one object; -1 for a message rejected whole (too big, not
  UTF-8, not JSON).

Not partitioned, unlike raw.ad_clicks: a partitioned table's unique key must
contain its partition key, and ``rejected_at`` of a redelivery is later than
the first rejection's, so a key per time partition would let a redelivery that
crosses a partition boundary add a second row. Nothing in the message is both
present for every rejected element and stable on redelivery to partition by
instead. Retention trims the table in bounded batches through the index on
``rejected_at`` (stores/retention_trims.py, with the cutoff and setting of raw,
FARLOOM_RAW_RETENTION_DAYS): rejected elements are a small share of traffic,
so a trim run deletes few rows, each batch a short transaction.

The element is kept as bytes (a whole rejected body need not be UTF-8, nor free
of NUL), cut to ELEMENT_BYTES; ``element_bytes`` is its full length and
``element_truncated`` says whether it was cut.

The read-only API role reads rejections through the view agg.rejected_clicks
(when and why, never the element itself, which may hold user ids and addresses):
it keeps no privilege on schema raw.
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

API_ROLE = "farloom_api"
ELEMENT_BYTES = 4096  # stores/rejected_clicks.py cuts elements to this


def upgrade() -> None:
    op.execute(f"""
        CREATE TABLE raw.rejected_clicks (
            source_id          text        NOT NULL,
            element_index      integer     NOT NULL CHECK (element_index >= -1),
            reason_code        text        NOT NULL,
            reason             text        NOT NULL,
            element            bytea       NOT NULL
                               CHECK (octet_length(element) <= {ELEMENT_BYTES}),
            element_bytes      integer     NOT NULL,
            element_truncated  boolean     NOT NULL,
            rejected_at        timestamptz NOT NULL,
            PRIMARY KEY (source_id, element_index)
        )
    """)
    # Status counts the recent rows per reason and retention trims the old ones.
    op.execute("CREATE INDEX rejected_clicks_rejected_at_idx "
               "ON raw.rejected_clicks (rejected_at) INCLUDE (reason_code)")
    op.execute("""
        CREATE VIEW agg.rejected_clicks AS
        SELECT rejected_at, reason_code FROM raw.rejected_clicks
    """)
    op.execute(f"GRANT SELECT ON agg.rejected_clicks TO {API_ROLE}")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS agg.rejected_clicks")
    op.execute("DROP TABLE IF EXISTS raw.rejected_clicks")
