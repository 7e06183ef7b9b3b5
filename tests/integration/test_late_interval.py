"""A minute that keeps receiving late clicks is re-aggregated at most once per interval."""

from __future__ import annotations

import time

from farloom_tasks.core.windows import minute_of
from farloom_tasks.pipeline import closing
from farloom_tasks.stores import close_ledger
from farloom_tasks.stores.transactions import transaction
from tests.support.stack import Stack


def _claim(stack: Stack, late_interval: float) -> list[int]:
    engine = stack.engine()
    try:
        with transaction(engine) as cursor:
            return [a.minute for a in closing.claim_attempts(
                cursor, retry_seconds=120, max_in_flight=32, late_interval_seconds=late_interval)]
    finally:
        engine.dispose()


def _mark_late_and_publish(stack: Stack, minute: int) -> None:
    engine = stack.engine()
    try:
        with transaction(engine) as cursor:
            cursor.execute("INSERT INTO agg.late_minutes (minute, late_clicks) "
                           "VALUES (to_timestamp(%s), 1) ON CONFLICT (minute) DO UPDATE "
                           "SET late_clicks = agg.late_minutes.late_clicks + 1, "
                           "mark_seq = nextval('agg.late_mark_seq')", (minute,))
            cursor.execute("UPDATE agg.minute_closes SET published_revision = started_revision "
                           "WHERE minute = to_timestamp(%s)", (minute,))
    finally:
        engine.dispose()


def _age_last_attempt(stack: Stack, minute: int, seconds: float) -> None:
    engine = stack.engine()
    try:
        with transaction(engine) as cursor:
            cursor.execute("UPDATE agg.minute_closes SET requested_at = now() - "
                           "make_interval(secs => %s) WHERE minute = to_timestamp(%s)",
                           (seconds, minute))
    finally:
        engine.dispose()


def test_a_minute_marked_late_again_waits_for_the_late_interval(stack: Stack) -> None:
    minute = minute_of(time.time()) - 600
    engine = stack.engine()
    try:
        with transaction(engine) as cursor:
            close_ledger.claim_revision(cursor, minute)  # its first close
    finally:
        engine.dispose()
    _mark_late_and_publish(stack, minute)
    _age_last_attempt(stack, minute, 10)

    assert _claim(stack, late_interval=5) == [minute]  # last attempt 10 s ago: due
    _mark_late_and_publish(stack, minute)  # more late clicks right after
    assert _claim(stack, late_interval=5) == []  # its last attempt just started
    assert _claim(stack, late_interval=0) == [minute]  # without an interval: every tick
    _mark_late_and_publish(stack, minute)
    _age_last_attempt(stack, minute, 6)
    assert _claim(stack, late_interval=5) == [minute]
