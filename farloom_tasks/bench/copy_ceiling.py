"""The ingest ceiling of ``farloom bench scale``: a bare COPY of the same clicks.

The clicks of one drain (the same bodies the worker gets) are turned into COPY
text before the clock starts, then sent in batches of the worker's batch size,
one COPY and one commit each, into an empty unpartitioned table of raw's
columns and indexes (unique click_id, (minute, ad_id)). Nothing a real ingest
must do is in it (no broker, no decoding, no validation, no dedup answer, no
outbox, no Redis): what PostgreSQL alone allows this machine for these rows.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from farloom_tasks.bench.env import BenchEnv
from farloom_tasks.bench.traffic import Traffic
from farloom_tasks.core.windows import minute_of
from farloom_tasks.errors import BenchFailed
from farloom_tasks.stores import db

TABLE = "public.bench_copy_ceiling"
COLUMNS = ("click_id, ad_id, clicked_at, minute, user_id, ip, country, device, campaign_id, "
           "advertiser_id")


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(sep=" ")


def _rows(traffic: Traffic, messages: int) -> Iterator[str]:
    for outgoing in traffic.bodies(messages):
        payload = orjson.loads(outgoing.body)
        for click in payload if isinstance(payload, list) else [payload]:
            at = float(click["clicked_at"])
            yield (f"{click['click_id']}\t{click['ad_id']}\t{_stamp(at)}\t"
                   f"{_stamp(minute_of(at))}\t{click['user_id']}\t{click['ip']}\t"
                   f"{click['country']}\t{click['device']}\t{click['campaign_id']}\t"
                   f"{click['advertiser_id']}\n")


def batches(traffic: Traffic, messages: int, batch_size: int) -> list[str]:
    """The COPY text of ``messages`` messages' clicks, ``batch_size`` rows per batch."""
    rows = list(_rows(traffic, messages))
    return ["".join(rows[i:i + batch_size]) for i in range(0, len(rows), batch_size)]


def measure(env: BenchEnv, texts: list[str]) -> float:
    """Rows/s of COPY + commit per batch into a freshly made table of raw's shape."""
    engine = db.make_engine(env.settings.database_url, pool_size=1)
    try:
        with db.translated_errors():
            conn: Any = engine.raw_connection()
        try:
            with db.translated_errors(), conn.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
                # LIKE a partitioned table gives a plain one with its columns and checks.
                cursor.execute(f"CREATE TABLE {TABLE} (LIKE raw.ad_clicks "
                               "INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
                cursor.execute(f"CREATE UNIQUE INDEX ON {TABLE} (click_id)")
                cursor.execute(f"CREATE INDEX ON {TABLE} (minute, ad_id)")
                conn.commit()
                rows = sum(text.count("\n") for text in texts)
                started = time.perf_counter()
                for text in texts:
                    cursor.copy_expert(f"COPY {TABLE} ({COLUMNS}) FROM STDIN", io.StringIO(text))
                    conn.commit()
                elapsed = time.perf_counter() - started
                cursor.execute(f"SELECT count(*) FROM {TABLE}")
                stored = int(cursor.fetchone()[0])
                if stored != rows:
                    raise BenchFailed(f"the COPY ceiling stored {stored:,} of {rows:,} rows")
                cursor.execute(f"DROP TABLE {TABLE}")
                conn.commit()
        finally:
            conn.close()
    finally:
        engine.dispose()
    return rows / elapsed
