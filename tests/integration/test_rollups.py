"""Hour and day rollups stay the sums of their minutes: through closing, late clicks,
a replay from raw, a reconciliation repair, concurrent writers, and minute retention.

Every expected rollup is summed by the test from the clicks (or per-minute counts)
it sent, never read back from agg.ad_clicks_per_minute.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from farloom_tasks.core import aggregates
from farloom_tasks.core.aggregates import MinuteResultPart
from farloom_tasks.core.clicks import Click
from farloom_tasks.core.topk import AdCount, top_k
from farloom_tasks.core.windows import MINUTE, iso, last_due_minute, to_datetime
from farloom_tasks.pipeline import reconcile
from farloom_tasks.pipeline.dropped_minutes import MinutesDropped
from farloom_tasks.stores.agg import AggStore
from tests.support.database import sql
from tests.support.minute_checks import (
    Counts,
    assert_agg_is,
    assert_rollups_are,
    clicks_for,
    counted,
    durable_writer,
    expected_rollups,
    rollups_in,
    set_watermark,
    wait_published,
    write_aggregates,
)
from tests.support.stack import Stack
from tests.support.waiting import wait_for

ADS = {"a": 6, "b": 4, "c": 3, "ü": 2, **{f"z{i}": 1 for i in range(8)}}
# A day of its own, far from today's minutes, for the tests that drive AggStore directly.
FAR_HOUR = 1_830_000_000 - 1_830_000_000 % 3600


def _tick() -> None:
    from farloom_tasks import tasks

    tasks.close_due_minutes.delay().get(timeout=60)


def _revision(stack: Stack, minute: int) -> int:
    rows = sql(stack, "SELECT revision FROM agg.minute_totals WHERE minute = :m",
               m=to_datetime(minute))
    return int(rows[0][0])


@pytest.fixture
def closed(stack: Stack, celery_worker: Any) -> tuple[list[int], list[Click]]:
    """Two closed minutes, written to agg through the whole pipeline, and their clicks."""
    newest = last_due_minute(time.time(), 5.0) - MINUTE
    minutes = [newest - MINUTE, newest]
    set_watermark(stack, minutes[0] - MINUTE)
    writer, _ = durable_writer(stack)
    clicks = clicks_for(minutes[0], "r0", ADS) + clicks_for(minutes[1], "r1", {"a": 2, "y": 5})
    writer.write(clicks)
    wait_published(stack, minutes, tick=_tick)
    write_aggregates(stack)
    assert_agg_is(stack, counted(clicks), minutes)
    return minutes, clicks


def test_rollups_are_the_sums_of_the_minutes_once_closed(
        stack: Stack, closed: tuple[list[int], list[Click]]) -> None:
    _, clicks = closed

    assert_rollups_are(stack, counted(clicks))


def test_late_clicks_reach_the_rollups_with_the_next_revision(
        stack: Stack, closed: tuple[list[int], list[Click]]) -> None:
    minutes, clicks = closed
    before = _revision(stack, minutes[0])
    writer, _ = durable_writer(stack)
    late = clicks_for(minutes[0], "late", {"a": 2, "new-ad": 3}) + clicks[:4]  # + duplicates
    writer.write(late)

    wait_published(stack, [minutes[0]], after=before, tick=_tick)
    write_aggregates(stack)

    assert_agg_is(stack, counted(clicks + late), minutes)
    assert_rollups_are(stack, counted(clicks + late))


def test_a_replay_from_raw_that_drops_and_lowers_ads_takes_them_out_of_the_rollups(
        stack: Stack, closed: tuple[list[int], list[Click]]) -> None:
    from farloom_tasks import tasks

    minutes, clicks = closed
    # Every click of "a" and "z2", and one of "b", of the first minute.
    gone = {c.click_id for c in clicks if c.clicked_at < minutes[1]
            and (c.ad_id in ("a", "z2") or c.click_id == "r0-b-0")}
    sql(stack, "DELETE FROM raw.ad_clicks WHERE click_id = ANY(:ids)", ids=list(gone))
    before = _revision(stack, minutes[0])

    result = tasks.replay_minute.delay(minutes[0], "raw").get(timeout=60)
    wait_published(stack, [minutes[0]], after=before)
    write_aggregates(stack)

    kept = [c for c in clicks if c.click_id not in gone]
    assert _revision(stack, minutes[0]) == result["revision"]
    assert_agg_is(stack, counted(kept), minutes)
    assert_rollups_are(stack, counted(kept))


def test_reconciliation_finds_and_recomputes_rollups_damaged_by_hand(
        stack: Stack, closed: tuple[list[int], list[Click]]) -> None:
    minutes, clicks = closed
    hour, day = minutes[0] - minutes[0] % 3600, minutes[0] - minutes[0] % 86_400
    sql(stack, "UPDATE agg.ad_clicks_per_hour SET clicks = clicks + 3 "
        "WHERE hour = :h AND ad_id = 'b'", h=to_datetime(hour))
    sql(stack, "INSERT INTO agg.ad_clicks_per_hour (hour, ad_id, clicks) VALUES (:h, 'ghost', 7)",
        h=to_datetime(hour))
    sql(stack, "DELETE FROM agg.ad_clicks_per_day WHERE day = :d AND ad_id = 'c'",
        d=to_datetime(day))
    sql(stack, "UPDATE agg.day_totals SET clicks = clicks - 1 WHERE day = :d",
        d=to_datetime(day))
    assert rollups_in(stack) != expected_rollups(counted(clicks))

    done = stack.farloom("reconcile", iso(minutes[0]), iso(minutes[1]))

    assert done.returncode == 0, done.stderr[-2000:]
    assert_rollups_are(stack, counted(clicks))
    assert_agg_is(stack, counted(clicks), minutes)
    runs = sql(stack, "SELECT minutes_differing, rollups_checked, rollups_differing, "
               "rollups_fixed FROM agg.reconciliation_runs")
    periods = len({m - m % 3600 for m in minutes}) + len({m - m % 86_400 for m in minutes})
    assert [tuple(r) for r in runs] == [(0, periods, 2, 2)]
    findings = sql(stack, "SELECT grain, extract(epoch FROM period)::bigint, rollup_clicks, "
                   "minute_clicks, differing_ads, fixed FROM agg.reconciliation_rollup_findings "
                   "ORDER BY grain DESC")
    in_hour = sum(n for (m, _), n in counted(clicks).items() if m - m % 3600 == hour)
    in_day = sum(counted(clicks).values())
    assert [tuple(f) for f in findings] == [
        ("hour", hour, in_hour, in_hour, 2, True),
        ("day", day, in_day - 1, in_day, 1, True),
    ]

    again = stack.farloom("reconcile", iso(minutes[0]), iso(minutes[1]))
    assert again.returncode == 0, again.stderr[-2000:]
    assert sql(stack, "SELECT rollups_differing FROM agg.reconciliation_runs "
               "ORDER BY run_id DESC LIMIT 1")[0][0] == 0


# --- AggStore driven directly: concurrency and retention ------------------------------


def _parts(minute: int, revision: int, ads: Sequence[AdCount],
           chunk_ads: int = 3) -> list[MinuteResultPart]:
    return list(aggregates.split_into_parts(
        minute=minute, revision=revision, computed_at=minute + 70.5,
        clicks=sum(c for _, c in ads), k=3, top=top_k(ads, 3), ads=ads, chunk_ads=chunk_ads))


def _counts(newest: dict[int, list[AdCount]]) -> Counts:
    return Counter({(minute, ad): n for minute, ads in newest.items() for ad, n in ads})


@pytest.fixture
def stores(stack: Stack) -> Iterator[list[AggStore]]:
    made: list[AggStore] = []
    try:
        yield made
    finally:
        for store in made:
            store.close()


def _in_threads(stores: list[AggStore], shares: list[list[MinuteResultPart]]) -> None:
    """Each share written by its own store in its own thread, all started together."""
    start = threading.Barrier(len(shares))
    failures: list[BaseException] = []

    def write(store: AggStore, share: list[MinuteResultPart]) -> None:
        try:
            start.wait()
            for part in share:
                store.write_part(part)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(store, share))
               for store, share in zip(stores, shares, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a writer thread never finished"
    assert failures == []


def test_writers_side_by_side_on_one_hour_keep_the_rollups_exact(
        stack: Stack, stores: list[AggStore]) -> None:
    rng = random.Random(11)
    # The last minutes of one hour and the first of the next, so both hours and one day.
    minutes = [FAR_HOUR - 3 * 60 + 60 * i for i in range(6)]
    newest: dict[int, list[AdCount]] = {}
    parts: list[MinuteResultPart] = []
    for minute in minutes:
        for revision in (1, 2, 3):
            # Shared ads across minutes, so writers meet on the same hour and day rows.
            ads = [(f"ad-{a}", rng.randint(1, 40)) for a in range(30) if rng.random() < 0.7]
            newest[minute] = ads
            parts += _parts(minute, revision, ads)
    parts += rng.sample(parts, len(parts) // 4)  # redeliveries
    rng.shuffle(parts)
    stores += [AggStore(stack.engine()) for _ in range(4)]

    _in_threads(stores, [parts[i::4] for i in range(4)])

    assert_rollups_are(stack, _counts(newest))


def _waiting_on_locks(stack: Stack, count: int) -> None:
    wait_for(f"{count} backend(s) waiting on a lock", lambda: sql(
        stack, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock'")[0][0] >= count, 30, poll=0.05)


def test_a_writer_whose_snapshot_missed_an_ad_another_inserted_counts_it_once(
        stack: Stack, stores: list[AggStore]) -> None:
    """Revision 2 inserts ad "x" and waits; revision 3, whose statement started before
    revision 2 committed, meets "x" as a row it did not see and must not count it twice."""
    minute = FAR_HOUR + 600
    first, second, third = [("a", 5)], [("a", 6), ("x", 4)], [("a", 7), ("x", 9)]
    stores += [AggStore(stack.engine()) for _ in range(2)]
    for part in _parts(minute, 1, first):
        stores[0].write_part(part)
    blocker = stack.engine().raw_connection()
    try:
        # Holding the hour total's row stops revision 2 inside its statement, after
        # it inserted "x" and updated "a".
        with blocker.cursor() as cursor:
            cursor.execute("SELECT clicks FROM agg.hour_totals WHERE hour = to_timestamp(%s) "
                           "FOR UPDATE", (FAR_HOUR,))
        writes = [threading.Thread(target=stores[0].write_part, args=(_parts(minute, 2, second,
                                                                             chunk_ads=5)[0],))]
        writes[0].start()
        _waiting_on_locks(stack, 1)
        # Revision 3's statement takes its snapshot now, then waits for "a".
        writes.append(threading.Thread(target=stores[1].write_part,
                                       args=(_parts(minute, 3, third, chunk_ads=5)[0],)))
        writes[1].start()
        _waiting_on_locks(stack, 2)
    finally:
        blocker.commit()
        blocker.close()
    for write in writes:
        write.join(timeout=60)

    rows = sql(stack, "SELECT ad_id, clicks, revision FROM agg.ad_clicks_per_minute "
               "ORDER BY ad_id")
    assert [tuple(r) for r in rows] == [("a", 7, 3), ("x", 9, 3)]
    assert_rollups_are(stack, Counter({(minute, "a"): 7, (minute, "x"): 9}))


def test_rollups_outlive_minutes_that_retention_dropped_and_are_not_recomputed_without_them(
        stack: Stack, stores: list[AggStore]) -> None:
    day = FAR_HOUR - FAR_HOUR % 86_400 + 5 * 86_400  # a day no other test writes
    # Hour-long minute partitions: retention can drop part of a day.
    dropped_hour, kept_hour = [day + 3600 + 60 * i for i in range(2)], [day + 7200, day + 7260]
    newest = {m: [("a", 3 + i), ("b", 1)] for i, m in enumerate(dropped_hour + kept_hour)}
    stores.append(AggStore(stack.engine(), partition_seconds=3600))
    for minute, ads in newest.items():
        for part in _parts(minute, 1, ads):
            stores[0].write_part(part)
    (name,) = sql(stack, "SELECT partition_name FROM raw.partitions "
                  "WHERE parent = 'agg.ad_clicks_per_minute' AND range_start <= :m "
                  "AND :m < range_end", m=to_datetime(dropped_hour[0]))[0]
    # What minute retention does: the partition goes, the ledger says when.
    sql(stack, f"ALTER TABLE agg.ad_clicks_per_minute DETACH PARTITION {name}")
    sql(stack, f"DROP TABLE {name}")
    sql(stack, "UPDATE raw.partitions SET dropped_at = now() WHERE partition_name = :n", n=name)
    # Damage to the kept hour and to the day, which now covers dropped minutes.
    sql(stack, "UPDATE agg.ad_clicks_per_hour SET clicks = 50 WHERE hour = :h AND ad_id = 'a'",
        h=to_datetime(day + 7200))
    sql(stack, "UPDATE agg.day_totals SET clicks = clicks + 2 WHERE day = :d", d=to_datetime(day))

    with pytest.raises(MinutesDropped):
        reconcile.reconcile(stack.engine(), start=dropped_hour[0], end=kept_hour[-1],
                            trigger="test", retry_seconds=60, replay=lambda minute: None)
    summary = reconcile.reconcile(stack.engine(), start=kept_hour[0], end=kept_hour[-1],
                                  trigger="test", retry_seconds=60, replay=lambda minute: None)

    # Only the kept hour can be checked against its minutes; the day is left as it is.
    assert [(f.grain, f.period) for f in summary.rollup_findings] == [("hour", day + 7200)]
    assert (summary.rollups_checked, summary.rollups_fixed) == (1, 1)
    expected = expected_rollups(_counts(newest))
    expected[("day", day, None)] += 2
    assert rollups_in(stack) == expected
