"""Raw partitions made on demand, one partition per minute's read, and the dedup window.

Clicks go through RabbitMQ into real `farloom ingest` workers (or, for the race,
straight into RawStore from many threads); what each test expects is computed from
its own input. Partitions outlive the stack's reset between tests, so each test
keeps to hours of event time of its own (a year of its own, or the present).
"""

from __future__ import annotations

import itertools
import json
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest

from farloom_tasks.core.clicks import Click
from farloom_tasks.core.windows import MINUTE, last_due_minute, minute_of
from farloom_tasks.stores import partitions
from farloom_tasks.stores.raw import RawStore
from tests.integration.ingest_support import (
    run_burst,
    run_bursts_side_by_side,
    worker,
)
from tests.support.broker import dead_letters, publish, queue_counts
from tests.support.database import raw_rows, sql
from tests.support.minute_checks import (
    assert_agg_is,
    set_watermark,
    wait_published,
    write_aggregates,
)
from tests.support.redis_view import redis_minute_counts
from tests.support.stack import Stack
from tests.support.waiting import wait_for

HOUR = 3600
RAW = "raw.ad_clicks"
MINUTES = "agg.ad_clicks_per_minute"


def _at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _click(click_id: str, at: float, ad_id: str) -> dict[str, Any]:
    """A click with every optional field, as ad servers send them."""
    return {"click_id": click_id, "ad_id": ad_id, "clicked_at": round(at, 3),
            "user_id": f"user-{click_id[-3:]}", "ip": "203.0.113.7", "country": "fr"}


def _bodies(clicks: Sequence[dict[str, Any]], rng: random.Random,
            per_message: int = 12) -> list[bytes]:
    """The clicks as JSON arrays of 1..per_message elements, in the order given."""
    bodies, start = [], 0
    while start < len(clicks):
        size = rng.randint(1, per_message)
        bodies.append(json.dumps(list(clicks[start:start + size])).encode())
        start += size
    return bodies


def _once_each(clicks: Sequence[dict[str, Any]]) -> Counter[tuple[str, int]]:
    """(click id, clicked_at in ms) -> 1 for every distinct click."""
    return Counter({(c["click_id"], round(c["clicked_at"] * 1000)): 1 for c in clicks})


def _stored(stack: Stack) -> Counter[tuple[str, int]]:
    """(click id, clicked_at in ms) -> how many raw rows hold it."""
    rows = sql(stack, "SELECT click_id, round(extract(epoch FROM clicked_at) * 1000)::bigint "
               "FROM raw.ad_clicks")
    return Counter((str(c), int(ms)) for c, ms in rows)


def _stored_by_partition(stack: Stack) -> Counter[str]:
    rows = sql(stack, "SELECT tableoid::regclass::text, count(*) FROM raw.ad_clicks GROUP BY 1")
    return Counter({str(name): int(n) for name, n in rows})


def _ledger(stack: Stack, parent: str) -> list[tuple[int, int, str]]:
    """(start, end, name) of every live partition of ``parent`` in raw.partitions."""
    rows = sql(stack, "SELECT extract(epoch FROM range_start)::bigint, "
               "extract(epoch FROM range_end)::bigint, partition_name FROM raw.partitions "
               "WHERE parent = :p AND dropped_at IS NULL ORDER BY range_start", p=parent)
    return [(int(s), int(e), str(n)) for s, e, n in rows]


def _attached(stack: Stack, parent: str) -> list[str]:
    """The partitions PostgreSQL has attached to ``parent`` (a name twice would show)."""
    rows = sql(stack, "SELECT inhrelid::regclass::text FROM pg_inherits "
               "WHERE inhparent = CAST(:p AS regclass)", p=parent)
    return sorted(str(name) for (name,) in rows)


def _holding(stack: Stack, parent: str, moment: float) -> list[tuple[int, int, str]]:
    return [row for row in _ledger(stack, parent) if row[0] <= moment < row[1]]


def _assert_no_overlap(stack: Stack, parent: str) -> None:
    ledger = _ledger(stack, parent)
    for (_, end, name), (start, _, later) in itertools.pairwise(ledger):
        assert end <= start, f"{name} overlaps {later}"
    assert _attached(stack, parent) == sorted(name for _, _, name in ledger)


def _forget_empty_partition(stack: Stack, parent: str, moment: float) -> None:
    """Drop the (empty) partition holding ``moment`` if an earlier test or task made it,
    so that this test sees ingest make it."""
    for _, _, name in _holding(stack, parent, moment):
        assert sql(stack, f"SELECT count(*) FROM {name}")[0][0] == 0, name
        sql(stack, f"DROP TABLE {name}")
        sql(stack, "DELETE FROM raw.partitions WHERE partition_name = :n", n=name)


def _plan(stack: Stack, statement: str, minute: int) -> str:
    """EXPLAIN of ``statement`` with its one parameter bound as psycopg2 binds it."""
    engine = stack.engine()
    try:
        conn: Any = engine.raw_connection()
        try:
            with conn.cursor() as cursor:
                cursor.execute("EXPLAIN " + statement, (minute,))
                return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            conn.close()
    finally:
        engine.dispose()


def _partitions_named(plan: str, parent: str) -> set[str]:
    # Index names start with their partition's name, so each partition counts once.
    table = parent.split(".")[1]
    return {f"{parent.split('.')[0]}.{name}"
            for name in re.findall(rf"{table}_p\d{{8}}_\d{{4}}", plan)}


def test_ingest_makes_the_partitions_of_2017_clicks_and_of_the_next_hour(stack: Stack) -> None:
    rng = random.Random(2017)
    nine = _at("2017-03-14T09:00:00+00:00")
    now = time.time()
    next_hour = (int(now) // HOUR + 1) * HOUR
    _forget_empty_partition(stack, RAW, next_hour)
    assert not _holding(stack, RAW, nine) and not _holding(stack, RAW, nine + HOUR)

    old = [_click(f"old-{i:04d}", nine + i * 9.5 + 0.125, f"ad-{i % 7}") for i in range(700)]
    ahead = [_click(f"ahead-{i:03d}", next_hour + 30 + i, f"ad-{i % 3}") for i in range(40)]
    publish(stack, _bodies(old + ahead, rng))
    # A click in the next hour may be up to an hour ahead of the worker's clock.
    summary = run_burst(stack, max_clock_skew_seconds=2 * HOUR)

    assert summary["clicks_stored"] == len(old) + len(ahead), summary
    assert dead_letters(stack) == []
    assert _stored(stack) == _once_each(old + ahead)
    made = {start: (end, name) for start, end, name in _ledger(stack, RAW)}
    expected = Counter({int(nine): 0, int(nine) + HOUR: 0, next_hour: 0})
    for click in old + ahead:
        expected[int(click["clicked_at"]) // HOUR * HOUR] += 1
    assert len(expected) == 3 and min(expected.values()) > 0  # the input spans three hours
    for start in expected:
        assert made[start][0] == start + HOUR, (start, made[start])
    assert _stored_by_partition(stack) == Counter(
        {made[start][1]: n for start, n in expected.items()})
    _assert_no_overlap(stack, RAW)


def test_reading_one_minute_touches_one_partition(stack: Stack) -> None:
    rng = random.Random(2016)
    ten = _at("2016-05-20T10:00:00+00:00")
    clicks = [_click(f"read-{i:04d}", ten - HOUR + i * 10.25, f"ad-{i % 11}") for i in range(1000)]
    publish(stack, _bodies(clicks, rng))
    run_burst(stack)
    engine = stack.engine()
    try:
        conn: Any = engine.raw_connection()
        try:
            with conn.cursor() as cursor:
                for day in range(-2, 3):
                    partitions.ensure(cursor, partitions.MINUTES, ten + day * 86_400, 86_400)
            conn.commit()
        finally:
            conn.close()
    finally:
        engine.dispose()
    assert len(_ledger(stack, RAW)) >= 3 and len(_ledger(stack, MINUTES)) >= 5

    minute = int(ten) + 25 * MINUTE  # in the second of the three hours the clicks cover
    ((_, _, raw_partition),) = _holding(stack, RAW, minute)
    ((_, _, minute_partition),) = _holding(stack, MINUTES, minute)
    # The statements stores/raw.ad_counts_in_pages and the per-minute reads run.
    raw_plan = _plan(stack, "SELECT ad_id, count(*) FROM raw.ad_clicks "
                            "WHERE minute = to_timestamp(%s) GROUP BY ad_id", minute)
    assert _partitions_named(raw_plan, RAW) == {raw_partition}, raw_plan
    agg_plan = _plan(stack, "SELECT ad_id, clicks FROM agg.ad_clicks_per_minute "
                            "WHERE minute = to_timestamp(%s)", minute)
    assert _partitions_named(agg_plan, MINUTES) == {minute_partition}, agg_plan


def _tick() -> None:
    from farloom_tasks import tasks

    tasks.close_due_minutes.delay().get(timeout=60)


@pytest.mark.usefixtures("celery_worker")
def test_dedup_holds_across_batches_workers_and_redeliveries(stack: Stack) -> None:
    rng = random.Random(20261202)
    newest = last_due_minute(time.time(), stack.settings.grace_seconds) - MINUTE
    minutes = [newest - 2 * MINUTE, newest - MINUTE, newest]
    set_watermark(stack, minutes[0] - MINUTE)
    clicks = [_click(str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                     minutes[i % 3] + rng.uniform(0, 59.999), f"ad-{rng.randrange(25)}")
              for i in range(1500)]
    redelivered = clicks * 3
    rng.shuffle(redelivered)  # repeats inside a message, across batches and across workers
    publish(stack, _bodies(redelivered, rng))

    # One worker, in small batches, SIGKILLed mid-stream: what it had not acked comes back.
    with worker(stack, batch_size=10, prefetch_count=40):
        wait_for("the worker to store", lambda: raw_rows(stack) > 0)
    assert raw_rows(stack) < len(clicks)
    publish(stack, _bodies(clicks, rng))  # and a producer retries everything once more
    assert run_bursts_side_by_side(stack, 2, batch_size=200) == [0, 0]
    assert queue_counts(stack) == (0, 0)

    assert _stored(stack) == _once_each(clicks)
    expected = Counter((minute_of(c["clicked_at"]), c["ad_id"]) for c in clicks)
    assert sum(expected.values()) == len(clicks)
    assert redis_minute_counts(stack) == expected

    wait_published(stack, minutes, tick=_tick)
    write_aggregates(stack)
    assert_agg_is(stack, expected, minutes)


def _reused_ids(noon: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Click ids used once more an hour and a day later (each a click of its own), and
    one used twice inside one hour (one click)."""
    other_periods = [_click("reused-in-next-hour", noon + 1800, "ad-1"),
                     _click("reused-in-next-hour", noon + HOUR + 1800, "ad-1"),
                     _click("reused-next-day", noon + 600, "ad-2"),
                     _click("reused-next-day", noon + 86_400 + 600, "ad-2")]
    same_hour = [_click("reused-in-same-hour", noon + 60, "ad-3"),
                 _click("reused-in-same-hour", noon + 2400, "ad-3")]
    return other_periods, same_hour


def _assert_one_click_per_id_and_period(stack: Stack, other_periods: list[dict[str, Any]],
                                        same_hour: list[dict[str, Any]]) -> None:
    stored = _stored(stack)
    # Each period keeps its own click; redeliveries of each are stored once.
    assert Counter({key: n for key, n in stored.items()
                    if key[0] != "reused-in-same-hour"}) == _once_each(other_periods)
    partitions_of = sql(stack, "SELECT click_id, count(DISTINCT tableoid) FROM raw.ad_clicks "
                        "GROUP BY click_id")
    assert sorted(tuple(row) for row in partitions_of) == [
        ("reused-in-next-hour", 2), ("reused-in-same-hour", 1), ("reused-next-day", 2)]
    # Inside one partition a click id is one click, whatever clicked_at says: one is kept.
    kept = [key for key in stored if key[0] == "reused-in-same-hour"]
    assert len(kept) == 1 and stored[kept[0]] == 1
    assert kept[0] in _once_each(same_hour)


def test_a_click_id_reused_in_another_hour_is_another_click(stack: Stack) -> None:
    # The dedup window is the raw partition (docs/design.md, "The dedup window").
    rng = random.Random(2013)
    other_periods, same_hour = _reused_ids(_at("2013-07-01T12:00:00+00:00"))
    # Each period in ingest batches of its own, each delivered three times.
    for period in (other_periods[0::2], other_periods[1::2]):
        publish(stack, _bodies(period * 3, rng))
        run_burst(stack)
    publish(stack, [json.dumps(same_hour).encode()] * 2)
    run_burst(stack)

    _assert_one_click_per_id_and_period(stack, other_periods, same_hour)


def test_a_click_id_reused_in_another_hour_in_the_same_batch_is_another_click(
        stack: Stack) -> None:
    other_periods, same_hour = _reused_ids(_at("2014-07-01T12:00:00+00:00"))
    publish(stack, [json.dumps(other_periods + same_hour).encode()] * 2)
    run_burst(stack)

    _assert_one_click_per_id_and_period(stack, other_periods, same_hour)


def test_many_workers_making_the_same_new_partition_at_once_make_one(stack: Stack) -> None:
    workers = 8
    hour = _at("2012-06-01T10:00:00+00:00")
    assert not _holding(stack, RAW, hour)
    shared = [Click(f"shared-{i}", f"ad-{i % 5}", hour + 11.5 * i, f"u-{i}", "192.0.2.1", "DE")
              for i in range(300)]
    own = [[Click(f"own-{n}-{i}", "ad-own", hour + 3599.5 - i) for i in range(40)]
           for n in range(workers)]
    stores = [RawStore(stack.engine(), stack.settings.shard_count) for _ in range(workers)]
    start = threading.Barrier(workers)

    def commit(n: int) -> int:
        start.wait(timeout=30)
        return stores[n].commit_batch(shared + own[n]).new_clicks

    try:
        with ThreadPoolExecutor(workers) as pool:
            stored = list(pool.map(commit, range(workers)))  # re-raises any worker's error
    finally:
        for store in stores:
            store.close()
            store.engine.dispose()

    assert sum(stored) == len(shared) + workers * 40
    ((start_at, end_at, name),) = _holding(stack, RAW, hour)
    assert (start_at, end_at) == (hour, hour + HOUR)
    assert _attached(stack, RAW).count(name) == 1
    expected = Counter({(c.click_id, round(c.clicked_at * 1000)): 1
                        for c in shared + [c for batch in own for c in batch]})
    assert _stored(stack) == expected
    assert _stored_by_partition(stack) == Counter({name: len(expected)})


def test_the_database_function_called_at_once_from_many_sessions_makes_one_partition(
        stack: Stack) -> None:
    sessions = 12
    moment = _at("2012-06-02T03:00:00+00:00") + 1234.5
    assert not _holding(stack, RAW, moment)
    engines = [stack.engine() for _ in range(sessions)]
    start = threading.Barrier(sessions)

    def ensure(n: int) -> str:
        conn: Any = engines[n].raw_connection()
        try:
            with conn.cursor() as cursor:
                start.wait(timeout=30)
                name = partitions.ensure(cursor, partitions.RAW, moment, HOUR)
            conn.commit()
            return name
        finally:
            conn.close()

    try:
        with ThreadPoolExecutor(sessions) as pool:
            names = list(pool.map(ensure, range(sessions)))
    finally:
        for engine in engines:
            engine.dispose()

    ((_, _, name),) = _holding(stack, RAW, moment)
    assert names == [name] * sessions
    assert _attached(stack, RAW).count(name) == 1


def test_a_longer_partition_length_fills_only_the_gaps_and_dedup_still_holds(
        stack: Stack) -> None:
    rng = random.Random(2011)
    day = _at("2011-04-05T00:00:00+00:00")
    assert not [row for row in _ledger(stack, RAW) if day <= row[0] < day + 86_400]

    # One-hour partitions first: 07:00-08:00 and 09:00-10:00.
    hourly = [_click(f"hourly-{i:03d}", day + 7 * HOUR + i * 29.5, f"ad-{i % 4}")
              for i in range(120)]
    hourly += [_click(f"hourly-{i:03d}", day + 9 * HOUR + (i - 120) * 29.5, f"ad-{i % 4}")
               for i in range(120, 240)]
    publish(stack, _bodies(hourly, rng))
    run_burst(stack, raw_partition_hours=1)

    # Then six hours per partition: 06:00-12:00 and 12:00-18:00, narrowed around the
    # hourly ones. Every click twice, and the hourly ones redelivered among them.
    six = [_click(f"six-{i:03d}", day + at * 60 + i * 0.5, f"ad-{i % 5}")
           for i, at in enumerate(rng.choice([6 * 60 + 10, 8 * 60 + 30, 10 * 60 + 30,
                                              11 * 60 + 59, 12 * 60 + 30, 17 * 60 + 1])
                                  for _ in range(300))]
    assert len({c["click_id"] for c in six}) == len(six)
    again = six * 2 + hourly
    rng.shuffle(again)
    publish(stack, _bodies(again, rng))
    run_burst(stack, raw_partition_hours=6)

    assert dead_letters(stack) == []
    assert _stored(stack) == _once_each(hourly + six)
    that_day = [(start - day, end - day) for start, end, _ in _ledger(stack, RAW)
                if day <= start < day + 86_400]
    assert that_day == [(6 * HOUR, 7 * HOUR), (7 * HOUR, 8 * HOUR), (8 * HOUR, 9 * HOUR),
                        (9 * HOUR, 10 * HOUR), (10 * HOUR, 12 * HOUR), (12 * HOUR, 18 * HOUR)]
    _assert_no_overlap(stack, RAW)
    by_partition = _stored_by_partition(stack)
    for start, end, name in _ledger(stack, RAW):
        if day <= start < day + 86_400:
            expected = sum(1 for c in hourly + six if start <= c["clicked_at"] < end)
            assert by_partition[name] == expected, (name, by_partition[name], expected)
