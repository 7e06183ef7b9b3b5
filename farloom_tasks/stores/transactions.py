"""One PostgreSQL transaction on a raw DB-API cursor, with errors translated."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from sqlalchemy.engine import Engine

from farloom_tasks.stores.db import translated_errors


@contextlib.contextmanager
def transaction(engine: Engine) -> Iterator[Any]:
    """Yield a psycopg2 cursor; commit on success, roll back on any exception.

    Lost connections surface as DatabaseUnavailable (a TransientError), so a
    Celery task that raised it is retried.
    """
    with translated_errors():
        conn: Any = engine.raw_connection()
    try:
        with translated_errors():
            try:
                with conn.cursor() as cursor:
                    yield cursor
                conn.commit()
            except BaseException:
                with contextlib.suppress(Exception):
                    conn.rollback()
                raise
    finally:
        conn.close()
