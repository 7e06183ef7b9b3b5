"""Slice rollups stay the sums of their minutes: through closing, a late click, replays,
two writers of one hour at once, a reconciliation repair, and minute retention.

Every expected rollup row is summed here in Python from the clicks the test wrote
(their slice values taken from the clicks and the test's owner table), never read
back from agg.slice_values or raw.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import pytest

from farloom_tasks.core.clicks import Click
from farloom_tasks.core.dimensions import Slice
from farloom_tasks.core.partitions import DAY, HOUR, start_of
from farloom_tasks.core.windows import MINUTE, last_due_minute, minute_of, to_datetime
from farloom_tasks.pipeline import reconcile, retention, slice_aggregation
from farloom_tasks.stores import slices as slice_store
from farloom_tasks.stores.transactions import transaction
from tests.integration.test_slices import (
    DEFAULT,
    WITH_COMBINATION,
    _clicks,
    wait_slices,
)
from tests.support.database import sql
from tests.support.minute_checks import (
    closes,
    durable_writer,
    set_watermark,
    wait_published,
    write_aggregates,
)
from tests.support.stack import Stack

# (grain, period, slice, value, ad_id or None for the value's total) -> clicks
Rollups = dict[tuple[str, int, str, str, str | None], int]
GRAINS = (("hour", HOUR), ("day", DAY))


def _value(click: Click, name: str) -> str | None:
    """The click's value for slice ``name``; an owner slice's is the owner the click
    names (every click of an ad in these tests names the same one, or none)."""
    if name in ("campaign", "advertiser"):
        return click.campaign_id if name == "campaign" else click.advertiser_id
    parts = [getattr(click, dimension) for dimension in name.split("*")]
    return None if None in parts else "*".join(parts)


def expected_rollups(clicks: Iterable[Click], slices: Sequence[Slice]) -> Rollups:
    """What the four slice rollup tables must hold: distinct click ids only."""
    unique: dict[str, Click] = {}
    for click in clicks:
        unique.setdefault(click.click_id, click)
    summed: Counter[tuple[str, int, str, str, str | None]] = Counter()
    for click in unique.values():
        minute = minute_of(click.clicked_at)
        for name in slice_store.slice_names(slices):
            value = _value(click, name)
            if value is None:
                continue
            for grain, length in GRAINS:
                period = minute - minute % length
                summed[(grain, period, name, value, click.ad_id)] += 1
                summed[(grain, period, name, value, None)] += 1
    return dict(summed)


def rollups_in(stack: Stack) -> Rollups:
    """Every row of the four slice rollup tables (a row of 0 clicks shows as one)."""
    rows = sql(stack, """
        SELECT 'hour', extract(epoch FROM hour)::bigint, slice, value, ad_id, clicks
        FROM agg.slice_ad_clicks_per_hour
        UNION ALL SELECT 'day', extract(epoch FROM day)::bigint, slice, value, ad_id, clicks
                  FROM agg.slice_ad_clicks_per_day
        UNION ALL SELECT 'hour', extract(epoch FROM hour)::bigint, slice, value, NULL, clicks
                  FROM agg.slice_totals_per_hour
        UNION ALL SELECT 'day', extract(epoch FROM day)::bigint, slice, value, NULL, clicks
                  FROM agg.slice_totals_per_day
    """)
    return {(g, int(p), s, v, a): int(c) for g, p, s, v, a, c in rows}


def assert_rollups_are(stack: Stack, want: Rollups) -> None:
    found = rollups_in(stack)
    extra = sorted((k, v) for k, v in found.items() if want.get(k) != v)
    lacking = sorted((k, v) for k, v in want.items() if found.get(k) != v)
    assert not extra and not lacking, (
        f"slice rollups have {len(extra)} unexpected rows, e.g. {extra[:5]}, and lack "
        f"{len(lacking)}, e.g. {lacking[:5]}")


def _tick() -> None:
    from farloom_tasks import tasks

    tasks.close_due_minutes.delay().get(timeout=60)


def _write_slices(stack: Stack, minute: int, slices: Sequence[Slice],
                  barrier: threading.Barrier | None = None) -> None:
    """One slice write of ``minute`` at a fresh revision, on an engine of its own."""
    engine = stack.engine()
    try:
        with transaction(engine) as cursor:
            revision = slice_store.forced_revision(cursor)
        if barrier is not None:
            barrier.wait(timeout=30)
        slice_aggregation.aggregate(engine, slices, minute=minute, revision=revision,
                                    partition_hours=stack.settings.minute_partition_hours,
                                    work_mem_mb=stack.settings.slice_work_mem_mb)
    finally:
        engine.dispose()


@pytest.fixture
def closed(stack: Stack, celery_worker: Any) -> Iterator[tuple[list[int], list[Click]]]:
    """Two minutes closed through the worker, with their slices (and so rollups) made."""
    newest = last_due_minute(time.time(), 5.0) - MINUTE
    minutes = [newest - MINUTE, newest]
    set_watermark(stack, minutes[0] - MINUTE)
    writer, _ = durable_writer(stack)
    clicks = _clicks(minutes[0], "m0", 90) + _clicks(minutes[1], "m1", 57)
    writer.write(clicks)
    wait_published(stack, minutes, tick=_tick)
    wait_slices(stack, minutes)
    yield minutes, clicks


def test_slice_rollups_of_closed_minutes_equal_the_clicks_sent(
        stack: Stack, closed: tuple[list[int], list[Click]]) -> None:
    _, clicks = closed
    want = expected_rollups(clicks, DEFAULT)
    assert {k[2] for k in want} == {"country", "device", "campaign", "advertiser"}
    assert {k[0] for k in want} == {"hour", "day"}
    assert_rollups_are(stack, want)


def test_a_configured_combination_is_rolled_up_like_every_slice(
        stack: Stack, closed: tuple[list[int], list[Click]]) -> None:
    minutes, clicks = closed
    for minute in minutes:
        _write_slices(stack, minute, WITH_COMBINATION)
    want = expected_rollups(clicks, WITH_COMBINATION)
    assert any(k[2] == "country*device" and k[3] == "US*mobile" for k in want)
    assert_rollups_are(stack, want)


def test_a_late_click_adjusts_the_rollups_exactly(
        stack: Stack, closed: tuple[list[int], list[Click]]) -> None:
    minutes, clicks = closed
    before = closes(stack, [minutes[0]])[minutes[0]][2] or 0
    writer, _ = durable_writer(stack)
    late = _clicks(minutes[0], "late", 40)
    writer.write(clicks[:30] + late)  # 30 duplicates of stored click ids, 40 new

    wait_published(stack, [minutes[0]], after=before, tick=_tick)
    wait_slices(stack, minutes)

    assert_rollups_are(stack, expected_rollups(clicks + late, DEFAULT))


def test_a_replay_of_a_minute_that_lost_an_ad_takes_it_out_of_the_rollups(
        stack: Stack, closed: tuple[list[int], list[Click]]) -> None:
    from farloom_tasks import tasks

    minutes, clicks = closed
    # Ad "b" only in the first minute: its rows of an hour holding only it fall to 0.
    gone = {c.click_id for c in clicks if c.ad_id == "b" and minute_of(c.clicked_at) == minutes[0]}
    assert gone
    sql(stack, "DELETE FROM raw.ad_clicks WHERE click_id = ANY(:ids)", ids=list(gone))

    tasks.replay_minute.delay(minutes[0], "raw").get(timeout=60)
    wait_slices(stack, minutes)

    assert_rollups_are(stack, expected_rollups(
        [c for c in clicks if c.click_id not in gone], DEFAULT))


def test_a_range_replay_keeps_the_rollups_exact(
        stack: Stack, closed: tuple[list[int], list[Click]]) -> None:
    from farloom_tasks import tasks

    minutes, clicks = closed
    gone = {c.click_id for c in clicks if c.ad_id == "a"}
    sql(stack, "DELETE FROM raw.ad_clicks WHERE click_id = ANY(:ids)", ids=list(gone))

    tasks.replay_minutes.delay(minutes, "raw").get(timeout=120)
    wait_slices(stack, minutes)

    kept = [c for c in clicks if c.click_id not in gone]
    assert_rollups_are(stack, expected_rollups(kept, DEFAULT))
    assert not any(k[4] == "a" for k in rollups_in(stack))


def _many_clicks(minute: int, prefix: str, ads: int, dropped: int = 0) -> list[Click]:
    """Clicks on ``ads`` ads over ``minute`` in every country and device, with owners
    (ads past ``dropped`` only): thousands of (value, ad) rows per minute."""
    countries, devices = ["US", "DE", "FR", "JP"], ["mobile", "desktop", "tv"]
    clicks = []
    for ad in range(dropped, ads):
        for i in range(1 + ad % 3):
            clicks.append(Click(f"{prefix}-{ad}-{i}", f"ad-{ad:05d}", minute + i + 0.5,
                                country=countries[(ad + i) % 4], device=devices[(ad * i) % 3],
                                campaign_id=f"c{ad % 7}", advertiser_id=f"adv{ad % 7}"))
    return clicks


def test_two_minutes_of_one_hour_written_at_once_end_exact_without_deadlock(
        stack: Stack) -> None:
    hour = start_of(time.time() - 3 * DAY, HOUR)
    minutes = [hour + MINUTE, hour + 2 * MINUTE]
    writer, _ = durable_writer(stack)
    # The same ads in both minutes: both writers upsert the same hour and day rows.
    sent = {m: _many_clicks(m, f"w{m}", 3000) for m in minutes}
    writer.write([c for m in minutes for c in sent[m]])
    failures: list[BaseException] = []

    def write(minute: int, barrier: threading.Barrier) -> None:
        try:
            _write_slices(stack, minute, DEFAULT, barrier)
        except BaseException as exc:  # a deadlock would land here
            failures.append(exc)

    for round_ in range(3):
        if round_:
            # Each minute loses different ads and so subtracts as well as adds.
            sql(stack, "DELETE FROM raw.ad_clicks WHERE minute = :m AND ad_id < :a",
                m=to_datetime(minutes[round_ % 2]), a=f"ad-{100 * round_:05d}")
            sent[minutes[round_ % 2]] = _many_clicks(minutes[round_ % 2],
                                                     f"w{minutes[round_ % 2]}", 3000,
                                                     dropped=100 * round_)
        barrier = threading.Barrier(len(minutes))
        threads = [threading.Thread(target=write, args=(m, barrier)) for m in minutes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not failures, failures
        assert_rollups_are(stack, expected_rollups(
            [c for m in minutes for c in sent[m]], DEFAULT))


def test_reconciliation_finds_and_repairs_damaged_and_missing_slice_rollup_rows(
        stack: Stack, closed: tuple[list[int], list[Click]]) -> None:
    from farloom_tasks import tasks

    minutes, clicks = closed
    write_aggregates(stack)  # the per-ad rows agree with raw: only slice rollups differ
    hour, day = start_of(minutes[0], HOUR), start_of(minutes[0], DAY)
    sql(stack, "UPDATE agg.slice_ad_clicks_per_hour SET clicks = clicks + 5 "
        "WHERE hour = :h AND slice = 'country' AND value = 'US' AND ad_id = 'a'",
        h=to_datetime(hour))
    sql(stack, "DELETE FROM agg.slice_totals_per_day WHERE day = :d AND slice = 'campaign' "
        "AND value = 'c1'", d=to_datetime(day))
    sql(stack, "INSERT INTO agg.slice_ad_clicks_per_day VALUES ('advertiser', 'adv9', :d, "
        "'ghost', 4)", d=to_datetime(day))

    first = tasks.reconcile.delay(minutes[0], minutes[1]).get(timeout=120)
    second = tasks.reconcile.delay(minutes[0], minutes[1]).get(timeout=120)

    assert (first["slice_rollups_differing"], first["slice_rollups_fixed"]) == (3, 3)
    assert (first["minutes_differing"], first["slices_differing"],
            first["rollups_differing"]) == (0, 0, 0)
    # Every (grain, period, slice) with rows: 4 slices, an hour or two, one day.
    periods = {(k[0], k[1]) for k in expected_rollups(clicks, DEFAULT)}
    assert first["slice_rollups_checked"] == 4 * len(periods)
    assert (second["slice_rollups_differing"], second["slice_rollups_checked"]) == (
        0, first["slice_rollups_checked"])
    found = sql(stack, "SELECT grain, extract(epoch FROM period)::bigint, slice, "
                "differing_rows, fixed FROM agg.reconciliation_slice_rollup_findings "
                "WHERE run_id = :r ORDER BY 1, 3", r=first["run_id"])
    assert [tuple(row) for row in found] == [
        ("day", day, "advertiser", 1, True), ("day", day, "campaign", 1, True),
        ("hour", hour, "country", 1, True)]
    assert_rollups_are(stack, expected_rollups(clicks, DEFAULT))


def test_slice_rollups_outlive_dropped_slice_minutes_and_reconciliation_then_skips_them(
        stack: Stack) -> None:
    now = time.time()
    old_hour, kept_hour = start_of(now - 6 * DAY, DAY) + HOUR, start_of(now - DAY, DAY) + HOUR
    old, kept = [old_hour, old_hour + MINUTE], [kept_hour, kept_hour + MINUTE]
    writer, _ = durable_writer(stack)
    clicks = [c for m in old + kept for c in _clicks(m, f"r{m}", 40)]
    writer.write(clicks)
    for minute in old + kept:
        _write_slices(stack, minute, DEFAULT)
    want = expected_rollups(clicks, DEFAULT)
    assert_rollups_are(stack, want)

    engine = stack.engine()
    try:
        report = retention.maintain(
            engine, replace(stack.settings, minute_retention_days=3, minute_partition_hours=24),
            now)
    finally:
        engine.dispose()

    dropped = sql(stack, "SELECT partition_name FROM raw.partitions "
                  "WHERE parent = 'agg.slice_values' AND dropped_at IS NOT NULL")
    assert [r[0] for r in dropped] and set(report.dropped) >= {r[0] for r in dropped}
    assert [r[0] for r in sql(stack, "SELECT DISTINCT minute FROM agg.slice_values "
                              "ORDER BY 1")] == [to_datetime(m) for m in kept]
    assert_rollups_are(stack, want)  # the rollups are now the only record of old minutes

    # Damage one row of each day: only the kept day can still be checked and repaired.
    for day in (start_of(old_hour, DAY), start_of(kept_hour, DAY)):
        sql(stack, "UPDATE agg.slice_totals_per_day SET clicks = clicks + 3 "
            "WHERE day = :d AND slice = 'country' AND value = 'US'", d=to_datetime(day))
    summary = reconcile.reconcile(stack.engine(), start=old[0], end=kept[-1], trigger="test",
                                  retry_seconds=60, replay=lambda minute: None)

    assert [(f.grain, f.period, f.slice) for f in summary.slice_rollup_findings] == [
        ("day", start_of(kept_hour, DAY), "country")]
    assert summary.slice_rollups_fixed == 1
    checked_periods = {(k[0], k[1]) for k in want if k[1] >= start_of(kept_hour, DAY)}
    assert summary.slice_rollups_checked == 4 * len(checked_periods)
    want[("day", start_of(old_hour, DAY), "country", "US", None)] += 3
    assert_rollups_are(stack, want)
