"""The aggregated writer against the real PostgreSQL and RabbitMQ.

Most tests drive ``AggStore.write_part`` directly (the whole transaction the
writer runs per message); the others run ``farloom write-aggregates`` as
subprocesses fed through the real queue.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from farloom_tasks.core import aggregates
from farloom_tasks.core.aggregates import InvalidAggregate, MinuteResultPart
from farloom_tasks.core.topk import AdCount, top_k
from farloom_tasks.pipeline import retention
from farloom_tasks.processes import stop as stop_process
from farloom_tasks.stores import partitions, topology
from farloom_tasks.stores.agg import AggStore, Outcome
from tests.support.broker import close_vhost_connections, dead_letters, publish
from tests.support.minute_checks import assert_rollups_are
from tests.support.stack import PROJECT_ROOT, Stack

MINUTE = 1_796_000_040 - 1_796_000_040 % 60
K = 3


def _parts(minute: int, revision: int, ads: Sequence[AdCount],
           chunk_ads: int = 2) -> list[MinuteResultPart]:
    return list(aggregates.split_into_parts(
        minute=minute, revision=revision, computed_at=minute + 70.5,
        clicks=sum(c for _, c in ads), k=K, top=top_k(ads, K), ads=ads, chunk_ads=chunk_ads))


def _snapshot(stack: Stack, minute: int = MINUTE) -> dict[str, Any]:
    params = {"m": minute}
    with stack.engine().connect() as conn:
        def rows(sql: str) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in conn.execute(sa.text(sql), params).all()]
        return {
            "ads": rows("SELECT ad_id, clicks, revision FROM agg.ad_clicks_per_minute "
                        "WHERE minute = to_timestamp(:m) ORDER BY ad_id"),
            "top": rows("SELECT rank, ad_id, clicks, revision FROM agg.top_ads "
                        "WHERE minute = to_timestamp(:m) ORDER BY rank"),
            "totals": rows("SELECT clicks, distinct_ads, revision FROM agg.minute_totals "
                           "WHERE minute = to_timestamp(:m)"),
            "parts": rows("SELECT revision, part FROM agg.minute_parts "
                          "WHERE minute = to_timestamp(:m) ORDER BY 1, 2"),
        }


def _expected(revision: int, ads: Sequence[AdCount]) -> dict[str, Any]:
    return {
        "ads": sorted((a, c, revision) for a, c in ads),
        "top": [(rank, a, c, revision) for rank, (a, c) in enumerate(top_k(ads, K), start=1)],
        "totals": [(sum(c for _, c in ads), len(ads), revision)],
        "parts": [],
    }


@pytest.fixture
def store(stack: Stack) -> Iterator[AggStore]:
    engine = stack.engine()
    agg_store = AggStore(engine)
    try:
        yield agg_store
    finally:
        agg_store.close()
        engine.dispose()


ADS_R1 = [("ad-a", 5), ("ad-b", 9), ("ad-c", 1), ("ad-d", 7), ("ad-e", 2)]
ADS_R2 = [("ad-a", 6), ("ad-b", 9), ("ad-d", 8), ("ad-e", 2), ("ad-f", 1)]  # drops ad-c


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 0, 1), (1, 2, 0)])
def test_a_revision_is_final_only_when_its_last_part_arrives_in_any_order(
        stack: Stack, store: AggStore, order: tuple[int, ...]) -> None:
    parts = _parts(MINUTE, 1, ADS_R1)
    assert len(parts) == 3

    outcomes = [store.write_part(parts[i]) for i in order]

    assert outcomes == [Outcome.WRITTEN, Outcome.WRITTEN, Outcome.FINALISED]
    assert _snapshot(stack) == _expected(1, ADS_R1)


def test_the_top_is_published_by_the_first_part_but_totals_wait_for_the_last(
        stack: Stack, store: AggStore) -> None:
    parts = _parts(MINUTE, 1, ADS_R1)
    store.write_part(parts[2])
    store.write_part(parts[0])

    seen = _snapshot(stack)
    assert (seen["top"], seen["totals"], seen["parts"]) == (
        _expected(1, ADS_R1)["top"], [], [(1, 0), (1, 2)])


def test_a_newer_revision_replaces_the_top_even_before_it_is_final(
        stack: Stack, store: AggStore) -> None:
    older, newer = _parts(MINUTE, 1, ADS_R1), _parts(MINUTE, 2, ADS_R2)
    for part in [*older, newer[1]]:
        store.write_part(part)
    assert _snapshot(stack)["top"] == _expected(2, ADS_R2)["top"]
    assert _snapshot(stack)["totals"] == _expected(1, ADS_R1)["totals"]


def test_a_newer_revision_that_drops_an_ad_leaves_no_stale_row(
        stack: Stack, store: AggStore) -> None:
    for part in _parts(MINUTE, 1, ADS_R1) + _parts(MINUTE, 2, ADS_R2):
        store.write_part(part)

    assert _snapshot(stack) == _expected(2, ADS_R2)


def _only(minute: int, ads: Sequence[AdCount]) -> Counter[tuple[int, str]]:
    return Counter({(minute, ad): clicks for ad, clicks in ads})


def test_the_rollups_follow_every_revision_and_keep_no_row_of_zero_clicks(
        stack: Stack, store: AggStore) -> None:
    older, newer = _parts(MINUTE, 1, ADS_R1), _parts(MINUTE, 2, ADS_R2)
    store.write_part(older[0])
    assert_rollups_are(stack, _only(MINUTE, ADS_R1[:2]))  # each part counts at its commit
    for part in older[1:]:
        store.write_part(part)
    assert_rollups_are(stack, _only(MINUTE, ADS_R1))

    # Revision 2 drops ad-c: its rollup rows go when the revision is final, not before.
    for part in newer:
        store.write_part(part)
    assert_rollups_are(stack, _only(MINUTE, ADS_R2))
    for part in older:
        assert store.write_part(part) is Outcome.STALE
    assert_rollups_are(stack, _only(MINUTE, ADS_R2))

    assert store.write_part(_parts(MINUTE, 3, [])[0]) is Outcome.FINALISED
    assert_rollups_are(stack, Counter())


def test_an_older_revision_delivered_after_a_newer_one_changes_nothing(
        stack: Stack, store: AggStore) -> None:
    for part in _parts(MINUTE, 2, ADS_R2):
        store.write_part(part)
    before = _snapshot(stack)

    outcomes = [store.write_part(part) for part in _parts(MINUTE, 1, ADS_R1)]

    assert outcomes == [Outcome.STALE] * 3
    assert _snapshot(stack) == before == _expected(2, ADS_R2)


def test_an_older_revision_finishing_while_a_newer_one_is_half_written_is_replaced(
        stack: Stack, store: AggStore) -> None:
    older, newer = _parts(MINUTE, 1, ADS_R1), _parts(MINUTE, 2, ADS_R2)
    for part in [newer[0], older[2], older[0], newer[1], older[1], newer[2]]:
        store.write_part(part)

    assert _snapshot(stack) == _expected(2, ADS_R2)


def test_duplicate_parts_change_nothing(stack: Stack, store: AggStore) -> None:
    parts = _parts(MINUTE, 1, ADS_R1)
    outcomes = [store.write_part(p) for p in [parts[1], parts[1], parts[0], parts[2],
                                              parts[2], parts[0]]]

    assert outcomes == [Outcome.WRITTEN, Outcome.WRITTEN, Outcome.WRITTEN,
                        Outcome.FINALISED, Outcome.STALE, Outcome.STALE]
    assert _snapshot(stack) == _expected(1, ADS_R1)


def test_a_minute_without_clicks_is_final_with_one_empty_part(
        stack: Stack, store: AggStore) -> None:
    for part in _parts(MINUTE, 1, ADS_R1):
        store.write_part(part)

    assert store.write_part(_parts(MINUTE, 2, [])[0]) is Outcome.FINALISED
    assert _snapshot(stack) == {"ads": [], "top": [], "totals": [(0, 0, 2)], "parts": []}


def test_top_ads_rank_by_clicks_desc_then_ad_id_in_code_point_order(
        stack: Stack, store: AggStore) -> None:
    # Under a linguistic collation "a-2" < "B-1" < "b-3"; in code-point order "B" comes first.
    ads = [("b-3", 4), ("a-2", 4), ("B-1", 4), ("Z", 9), ("é", 4), ("e", 4)]
    part = MinuteResultPart(
        minute=MINUTE, revision=7, part=0, parts=1, computed_at=MINUTE + 65.0,
        clicks=29, distinct_ads=6, k=5, top=tuple(reversed(ads)), ads=tuple(ads))

    store.write_part(part)

    with stack.engine().connect() as conn:
        in_sql = conn.execute(sa.text(
            "SELECT ad_id FROM agg.ad_clicks_per_minute WHERE minute = to_timestamp(:m) "
            'ORDER BY clicks DESC, ad_id COLLATE "C" LIMIT 5'), {"m": MINUTE}).scalars().all()
    ranked = [ad for _, ad, _, _ in _snapshot(stack)["top"]]
    assert ranked == ["Z", "B-1", "a-2", "b-3", "e"] == list(in_sql)


def test_ad_ids_with_quotes_backslashes_braces_and_commas_are_stored_as_they_are(
        stack: Stack, store: AggStore) -> None:
    ads = [('a"b', 3), ("c\\d", 2), ("{e,f}", 4), (" g ", 1), ("NULL", 5), ("ü\\\"", 6)]
    for part in _parts(MINUTE, 1, ads):
        store.write_part(part)

    assert _snapshot(stack) == _expected(1, ads)


def test_parts_that_overlap_end_as_the_later_part_says(stack: Stack, store: AggStore) -> None:
    first, second = _parts(MINUTE, 1, ADS_R1, chunk_ads=3)
    overlapping = MinuteResultPart(**{**_fields(second), "ads": (("ad-a", 40), *second.ads)})

    store.write_part(first)
    assert store.write_part(overlapping) is Outcome.FINALISED

    assert ("ad-a", 40, 1) in _snapshot(stack)["ads"]


def test_a_part_for_a_minute_beyond_minute_retention_is_refused_as_data(
        stack: Stack, store: AggStore) -> None:
    # Minute retention dropped the day's partition: storing a (late) result for one of
    # its minutes would make the partition again, so it is refused, to be dead-lettered.
    old_minute = MINUTE - 40 * 86_400
    day = old_minute - old_minute % 86_400
    with stack.engine().connect() as conn:
        conn.execute(sa.text("SELECT raw.ensure_partition('agg.ad_clicks_per_minute', "
                             "to_timestamp(:m), interval '1 day')"), {"m": old_minute})
        conn.commit()
    retention.drop_partition(stack.engine(), partitions.MINUTE_COUNTS, day, None)

    with pytest.raises(InvalidAggregate, match="beyond minute retention"):
        store.write_part(_parts(old_minute, 1, [("ad-a", 3)])[0])
    assert store.write_part(_parts(MINUTE, 1, [("ad-a", 3)], chunk_ads=5)[0]) is (
        Outcome.FINALISED)  # the writer goes on with valid parts


def _fields(part: MinuteResultPart) -> dict[str, Any]:
    return {name: getattr(part, name) for name in MinuteResultPart.__slots__}


# --- the worker as a subprocess, fed through RabbitMQ -------------------------------


def _publish(stack: Stack, bodies: Sequence[bytes]) -> None:
    publish(stack, bodies, exchange=topology.AGGREGATES_EXCHANGE)


def _drain_dead(stack: Stack) -> list[tuple[bytes, dict[str, Any]]]:
    return dead_letters(stack, topology.AGGREGATES_DEAD_QUEUE, take=True)


def _writer(stack: Stack, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "farloom_tasks.cli", "write-aggregates", *args],
        env={**stack.env, **env}, cwd=PROJECT_ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    try:
        yield started
    finally:
        for process in started:
            stop_process(process, sig=signal.SIGKILL, grace=10)


def _finish(process: subprocess.Popen[str], timeout: float = 60) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def test_garbage_is_dead_lettered_with_its_reason_and_valid_messages_behind_it_are_written(
        stack: Stack, processes: list[subprocess.Popen[str]]) -> None:
    valid = [aggregates.encode(p) for p in _parts(MINUTE, 1, ADS_R1)]
    big = _parts(MINUTE + 60, 1, [(f"ad-{i:05d}", 1) for i in range(500)], chunk_ads=500)
    twice = _parts(MINUTE + 120, 1, [("ad-x", 1)])[0]
    garbage = {
        b"{not json": "invalid_aggregate",
        b'{"type": "farloom.minute_result", "version": 99}': "invalid_aggregate",
        aggregates.encode(twice).replace(b'[["ad-x",1]]', b'[["x",1],["x",2]]'):
            "invalid_aggregate",
        aggregates.encode(big[0]): "oversized",
    }
    _publish(stack, [valid[0], *garbage, valid[1], valid[2]])

    processes.append(_writer(stack, "--burst", FARLOOM_AGGREGATE_MAX_MESSAGE_BYTES="4096"))
    _finish(processes[-1])

    dead = _drain_dead(stack)
    assert {body: h[topology.REASON_CODE_HEADER] for body, h in dead} == garbage
    assert all(h[topology.REASON_HEADER] and h[topology.SOURCE_QUEUE_HEADER]
               == topology.AGGREGATES_QUEUE for _, h in dead)
    assert _snapshot(stack) == _expected(1, ADS_R1)


def test_two_writers_side_by_side_end_exact(
        stack: Stack, processes: list[subprocess.Popen[str]]) -> None:
    rng = random.Random(7)
    minutes = [MINUTE + 60 * i for i in range(4)]
    newest: dict[int, list[AdCount]] = {}
    bodies: list[bytes] = []
    for minute in minutes:
        for revision in (1, 2, 3):
            # Each revision keeps a random subset of ads, so newer ones drop some.
            ads = [(f"ad-{a}", rng.randint(1, 50)) for a in range(40) if rng.random() < 0.7]
            newest[minute] = ads
            bodies += [aggregates.encode(p) for p in _parts(minute, revision, ads, chunk_ads=5)]
    bodies += rng.sample(bodies, len(bodies) // 3)  # redeliveries
    rng.shuffle(bodies)
    _publish(stack, bodies)

    processes += [_writer(stack, "--burst", FARLOOM_AGGREGATE_PREFETCH_COUNT="2")
                  for _ in range(2)]
    for process in processes:
        _finish(process, timeout=90)

    for minute in minutes:
        assert _snapshot(stack, minute) == _expected(3, newest[minute])
    assert_rollups_are(stack, Counter({(minute, ad): clicks for minute, ads in newest.items()
                                       for ad, clicks in ads}))


def test_sigterm_finishes_the_current_message_and_exits_cleanly(
        stack: Stack, processes: list[subprocess.Popen[str]]) -> None:
    processes.append(_writer(stack))
    _publish(stack, [aggregates.encode(p) for p in _parts(MINUTE, 1, ADS_R1)])
    deadline = time.monotonic() + 30
    while _snapshot(stack)["totals"] == [] and time.monotonic() < deadline:
        time.sleep(0.1)

    os.kill(processes[-1].pid, signal.SIGTERM)

    _finish(processes[-1], timeout=30)
    assert _snapshot(stack) == _expected(1, ADS_R1)


def _wait_for(stack: Stack, check: str, expected: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while _snapshot(stack)[check] != expected and time.monotonic() < deadline:
        time.sleep(0.1)


def test_a_writer_that_loses_its_broker_connection_reconnects_and_finishes_the_minute(
        stack: Stack, processes: list[subprocess.Popen[str]]) -> None:
    parts = [aggregates.encode(p) for p in _parts(MINUTE, 1, ADS_R1)]
    processes.append(_writer(stack))
    _publish(stack, parts[:1])
    _wait_for(stack, "parts", [(1, 0)])

    assert close_vhost_connections(stack) >= 1
    _publish(stack, parts[1:])
    _wait_for(stack, "totals", _expected(1, ADS_R1)["totals"])

    assert processes[-1].poll() is None
    assert _snapshot(stack) == _expected(1, ADS_R1)
    os.kill(processes[-1].pid, signal.SIGTERM)
    _finish(processes[-1], timeout=30)
