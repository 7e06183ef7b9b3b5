"""PostgreSQL connections (adapter): engines, database creation, error translation."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg2
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

# Re-exported: the pipeline passes engines around without importing SQLAlchemy.
from sqlalchemy.engine import Engine as Engine

from farloom_tasks.errors import DatabaseUnavailable

T = TypeVar("T")

# Taken in shared mode by every ingest transaction and in exclusive mode when the
# closed watermark advances, so no ingest transaction can straddle a close.
WATERMARK_LOCK_KEY = 0x46_4C_4F_4F_4D  # "FLOOM"


def make_engine(url: str, *, pool_size: int = 4) -> Engine:
    return sa.create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=4,
                            connect_args={"connect_timeout": 5,
                                          "options": "-c timezone=UTC"})


@contextmanager
def translated_errors() -> Iterator[None]:
    """Turn lost-connection errors into DatabaseUnavailable; let data errors through."""
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise DatabaseUnavailable(f"PostgreSQL: {exc.orig or exc}") from exc
    except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
        raise DatabaseUnavailable(f"PostgreSQL: {exc}") from exc


def database_name(url: str) -> str:
    name = make_url(url).database
    if not name:
        raise ValueError(f"the database URL {redacted(url)} names no database")
    return name


def redacted(url: str) -> str:
    """The URL with any password hidden, for logs and error messages."""
    return make_url(url).render_as_string(hide_password=True)


def _maintenance_url(url: str) -> URL:
    return make_url(url).set(database="postgres")


def create_database_if_missing(url: str) -> bool:
    """Create the URL's database when it does not exist. True if it was created."""
    name = database_name(url)
    engine = sa.create_engine(_maintenance_url(url), isolation_level="AUTOCOMMIT")
    try:
        with translated_errors(), engine.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                  {"n": name}).scalar()
            if exists:
                return False
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
            return True
    finally:
        engine.dispose()


def drop_database(url: str) -> None:
    """Drop the URL's database, disconnecting its sessions first (tests and teardown)."""
    name = database_name(url)
    engine = sa.create_engine(_maintenance_url(url), isolation_level="AUTOCOMMIT")
    try:
        with translated_errors(), engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        engine.dispose()


class OwnedConnection:
    """One PostgreSQL connection owned by a single-threaded worker; one transaction per run.

    After any failure the connection is closed and the next run opens a new one:
    its state (aborted transaction, half-read result, dead socket) is unknown.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Any = None

    def run(self, work: Callable[[Any], T]) -> T:
        """``work(cursor)`` in one transaction: committed if it returns, rolled back if not.

        Lost connections raise DatabaseUnavailable; data errors propagate as they are.
        """
        if self._conn is None or self._conn.closed:
            with translated_errors():
                self._conn = self.engine.raw_connection()
        conn = self._conn
        try:
            with translated_errors():
                try:
                    with conn.cursor() as cursor:
                        result = work(cursor)
                    conn.commit()
                    return result
                except BaseException:
                    with contextlib.suppress(Exception):
                        conn.rollback()
                    raise
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            # Closing a broken connection may fail; it is gone either way.
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
