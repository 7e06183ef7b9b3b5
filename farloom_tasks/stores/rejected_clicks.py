"""The rejected-click ledger, raw.rejected_clicks (adapter; migration 0008).

One row per rejected element, keyed by (source message identity, element index)
(core.message_identity). ``record`` runs in the caller's transaction: the
ingest worker calls it in the transaction of the batch's valid clicks
(stores/raw.py ``commit_batch``), so the rows become durable together with the
clicks and before any of the batch's messages is acked. A redelivered message
finds its rows there and adds none (ON CONFLICT DO NOTHING keeps the first
rejection's time and reason).

The readers go through the view agg.rejected_clicks, which the read-only API
role may read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from psycopg2.extras import execute_values

from farloom_tasks.core.message_identity import ledger_index
from farloom_tasks.core.messages import DeadLetter
from farloom_tasks.errors import DatabaseUnavailable

ELEMENT_BYTES = 4096  # bytes of an element kept; migration 0008's CHECK holds the same bound
REASON_CHARS = 1000  # as the dead-letter header's bound (stores/dead_letters.py)

# Sorted by key, so that two transactions recording the same rows (a message
# redelivered to another worker while the first still writes) lock them in one
# order and cannot deadlock; the later one waits, then skips them.
_RECORD = """
INSERT INTO raw.rejected_clicks (source_id, element_index, reason_code, reason, element,
                                 element_bytes, element_truncated, rejected_at)
VALUES %s
ON CONFLICT (source_id, element_index) DO NOTHING
"""


def record(cursor: Any, letters: Sequence[DeadLetter], rejected_at: float) -> int:
    """Add a row per letter not yet in the ledger; returns how many were new.

    Raises ValueError for a letter without a source identity: its row could not be
    told apart from another message's (a bug in the caller, never acked).
    """
    rows: dict[tuple[str, int], tuple[object, ...]] = {}
    for letter in letters:
        if not letter.source_id:
            raise ValueError("a dead letter without a source identity cannot enter the "
                             f"rejected-click ledger ({letter.rejection.code})")
        key = (letter.source_id, ledger_index(letter.element_index))
        if key in rows:  # one message twice in a batch: a redelivery, one row
            continue
        body = letter.body
        rows[key] = (*key, _storable(letter.rejection.code, 100),
                     _storable(letter.rejection.detail, REASON_CHARS),
                     body[:ELEMENT_BYTES], len(body), len(body) > ELEMENT_BYTES, rejected_at)
    if not rows:
        return 0
    execute_values(cursor, _RECORD, [rows[key] for key in sorted(rows)],
                   template="(%s, %s, %s, %s, %s, %s, %s, to_timestamp(%s))",
                   page_size=len(rows))  # one statement, so rowcount counts every row
    return int(cursor.rowcount)


_PER_MINUTE = sa.text("""
SELECT extract(epoch FROM date_trunc('minute', rejected_at, 'UTC'))::bigint AS minute,
       reason_code, count(*)
FROM agg.rejected_clicks
WHERE rejected_at >= to_timestamp(:since)
GROUP BY 1, 2
ORDER BY 1, 2
""")


def per_minute_since(engine: sa.Engine, since: float) -> list[tuple[int, str, int]]:
    """(minute, reason code, rejected elements) for each minute of rejections at or after
    ``since``, oldest first (by rejected_at, the time of the first rejection).

    Reads the view the read-only API role may read. Raises DatabaseUnavailable on any
    SQLAlchemy error, with the driver's message (as health_probes.progress).
    """
    try:
        with engine.connect() as conn:
            rows = conn.execute(_PER_MINUTE, {"since": since}).all()
    except sa.exc.SQLAlchemyError as exc:
        text = str(getattr(exc, "orig", None) or exc).strip()
        raise DatabaseUnavailable(text or type(exc).__name__) from exc
    return [(int(minute), str(code), int(count)) for minute, code, count in rows]


def _storable(text: str, limit: int) -> str:
    # PostgreSQL's text holds neither NUL nor unpaired surrogates, and a reason may
    # quote the very input that was rejected for holding them.
    cut = text[:limit].replace("\x00", "\\x00")
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")
