"""One-off SQL against a test stack: each call its own engine, disposed after."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tests.support.stack import Stack


def sql(stack: Stack, statement: str, **params: Any) -> list[Any]:
    """Run one statement in its own transaction; its rows (none for a statement without)."""
    engine = stack.engine()
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(statement), params)
            return list(result.fetchall()) if result.returns_rows else []
    finally:
        engine.dispose()


def raw_rows(stack: Stack) -> int:
    return int(sql(stack, "SELECT count(*) FROM raw.ad_clicks")[0][0])


def pending_outbox(stack: Stack) -> int:
    return int(sql(stack, "SELECT count(*) FROM raw.redis_outbox")[0][0])
