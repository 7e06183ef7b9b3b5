"""Slice rollups are built once per hour and day, by the real worker, and then stay the
sums of their minutes: a late click before or after the build, a builder racing a
writer, the sweep after a missed trigger, a day from its hours, two writers of one
built hour at once, a reconciliation repair, and minute retention.

Every expected rollup row is summed here in Python from the clicks the test wrote
(their slice values taken from the clicks and the test's owner table), never read
back from agg.slice_values or raw.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from farloom_tasks.core.clicks import Click
from farloom_tasks.core.dimensions import Slice
from farloom_tasks.core.partitions import DAY, HOUR, start_of
from farloom_tasks.core.windows import MINUTE, minute_of, to_datetime
from farloom_tasks.pipeline import reconcile, retention, slice_aggregation, slice_rollup_builds
from farloom_tasks.stores import slice_rollups
from farloom_tasks.stores import slices as slice_store
from farloom_tasks.stores.transactions import transaction
from tests.integration.test_slices import (
    DEFAULT,
    _clicks,
)
from tests.support.database import sql
from tests.support.minute_checks import (
    durable_writer,
    set_watermark,
)
from tests.support.stack import Stack, isolated_stack

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


def expected_rollups(clicks: Iterable[Click], slices: Sequence[Slice],
                     built: set[tuple[str, int]] | None = None) -> Rollups:
    """What the four slice rollup tables must hold: distinct click ids only, in the
    (grain, period) of ``built`` only (None: every period)."""
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
                if built is not None and (grain, period) not in built:
                    continue
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


def marks(stack: Stack) -> set[tuple[str, int, str]]:
    rows = sql(stack, "SELECT grain, extract(epoch FROM period)::bigint, slice "
               "FROM agg.slice_rollup_periods")
    return {(g, int(p), s) for g, p, s in rows}


def wait_built(stack: Stack, want: set[tuple[str, int, str]], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not want <= marks(stack):
        assert time.monotonic() < deadline, f"not built: {sorted(want - marks(stack))}"
        time.sleep(0.2)


def every_slice(grain: str, period: int,
                slices: Sequence[Slice] = DEFAULT) -> set[tuple[str, int, str]]:
    return {(grain, period, name) for name in slice_store.slice_names(slices)}


def _slice_task(stack: Stack, minute: int) -> None:
    """The worker's slice task for ``minute`` at a fresh revision (its trigger included)."""
    from farloom_tasks import tasks

    engine = stack.engine()
    try:
        with transaction(engine) as cursor:
            revision = slice_store.forced_revision(cursor)
    finally:
        engine.dispose()
    tasks.aggregate_slices.delay(minute, revision).get(timeout=120)


def _past_hour(days: int = 3) -> int:
    return start_of(time.time() - days * DAY, HOUR)


def _build(stack: Stack, grain: str, period: int, slices: Sequence[Slice] = DEFAULT) -> None:
    engine = stack.engine()
    try:
        slice_rollup_builds.build_period(engine, slice_store.slice_names(slices), grain, period)
    finally:
        engine.dispose()


def test_an_hour_is_built_by_the_worker_after_its_last_minute_and_equals_the_clicks(
        stack: Stack, celery_worker: Any) -> None:
    hour = _past_hour()
    minutes = [hour + MINUTE, hour + 30 * MINUTE, hour + HOUR - MINUTE]
    set_watermark(stack, hour + HOUR)
    writer, _ = durable_writer(stack)
    clicks = [c for m in minutes for c in _clicks(m, f"h{m}", 60)]
    writer.write(clicks)
    for minute in minutes[:-1]:
        _slice_task(stack, minute)
    # A minute whose hour is not built adds nothing to any rollup.
    assert rollups_in(stack) == {} and marks(stack) == set()

    _slice_task(stack, minutes[-1])  # the hour's last minute: the trigger
    wait_built(stack, every_slice("hour", hour))

    want = expected_rollups(clicks, DEFAULT, {("hour", hour)})
    assert {k[2] for k in want} == {"country", "device", "campaign", "advertiser"}
    assert_rollups_are(stack, want)
    assert ("day", start_of(hour, DAY)) not in {(k[0], k[1]) for k in rollups_in(stack)}


def test_the_slice_task_of_a_days_last_minute_builds_its_last_hour_then_the_day(
        stack: Stack, celery_worker: Any) -> None:
    day = start_of(time.time() - 5 * DAY, DAY)
    minutes = [day + 5 * HOUR + 10 * MINUTE, day + DAY - MINUTE]
    set_watermark(stack, day + DAY)
    writer, _ = durable_writer(stack)
    clicks = [c for m in minutes for c in _clicks(m, f"d{m}", 45)]
    writer.write(clicks)
    _write_slices(stack, minutes[0], DEFAULT)  # no trigger: not an hour's last minute
    _slice_task(stack, minutes[1])  # the day's last minute
    periods = {("hour", h) for h in range(day, day + DAY, HOUR)} | {("day", day)}
    wait_built(stack, set().union(*(every_slice(g, p) for g, p in periods)))
    assert_rollups_are(stack, expected_rollups(clicks, DEFAULT, periods))


def test_a_late_click_after_the_build_adjusts_the_rollups_exactly_and_before_it_counts_once(
        stack: Stack, celery_worker: Any) -> None:
    hour = _past_hour()
    minutes = [hour + 2 * MINUTE, hour + HOUR - MINUTE]
    set_watermark(stack, hour + HOUR)
    writer, _ = durable_writer(stack)
    clicks = [c for m in minutes for c in _clicks(m, f"l{m}", 70)]
    writer.write(clicks)
    _slice_task(stack, minutes[0])
    before = _clicks(minutes[0], "before", 25)  # late, before the build
    writer.write(clicks[:10] + before)
    _slice_task(stack, minutes[0])
    _slice_task(stack, minutes[1])  # triggers the build
    wait_built(stack, every_slice("hour", hour))
    built = {("hour", hour)}
    assert_rollups_are(stack, expected_rollups(clicks + before, DEFAULT, built))

    after = _clicks(minutes[1], "after", 40)  # late, after the build
    writer.write(clicks[-15:] + after)
    _slice_task(stack, minutes[1])
    assert_rollups_are(stack, expected_rollups(clicks + before + after, DEFAULT, built))

    # A replay of a minute that lost an ad takes it out of the built hour.
    gone = {c.click_id for c in clicks + before if c.ad_id == "b"
            and minute_of(c.clicked_at) == minutes[0]}
    assert gone
    sql(stack, "DELETE FROM raw.ad_clicks WHERE click_id = ANY(:ids)", ids=list(gone))
    _slice_task(stack, minutes[0])
    kept = [c for c in clicks + before + after if c.click_id not in gone]
    assert_rollups_are(stack, expected_rollups(kept, DEFAULT, built))


def _sweep_candidates(stack: Stack) -> list[tuple[str, int]]:
    engine = stack.engine()
    try:
        with transaction(engine) as cursor:
            return slice_rollups.unbuilt(cursor, slice_store.slice_names(DEFAULT), 100)
    finally:
        engine.dispose()


def test_an_hour_waits_for_a_claimed_revision_of_a_minute_to_be_sliced_and_for_its_close(
        stack: Stack) -> None:
    hour = _past_hour()
    minutes = [hour + 7 * MINUTE, hour + 8 * MINUTE]
    writer, _ = durable_writer(stack)
    clicks = [c for m in minutes for c in _clicks(m, f"p{m}", 40)]
    writer.write(clicks)
    for minute in minutes:
        _write_slices(stack, minute, DEFAULT)
    set_watermark(stack, hour + HOUR - 2 * MINUTE)  # its last minute is not closed yet
    _build(stack, "hour", hour)
    assert marks(stack) == set()

    set_watermark(stack, hour + HOUR)
    # A newer revision of a minute is claimed and its slice task has not run yet.
    sql(stack, "INSERT INTO agg.minute_closes (minute, attempts, started_revision) "
        "VALUES (:m, 1, nextval('agg.revision_seq'))", m=to_datetime(minutes[1]))
    _build(stack, "hour", hour)
    assert marks(stack) == set() and rollups_in(stack) == {}
    assert _sweep_candidates(stack) == []  # nor does the sweep look at it


    late = _clicks(minutes[1], "late", 20)
    writer.write(late)
    _write_slices(stack, minutes[1], DEFAULT)  # a fresh revision, newer than the claim
    assert _sweep_candidates(stack) == [("hour", hour)]
    _build(stack, "hour", hour)
    assert marks(stack) == every_slice("hour", hour)
    assert_rollups_are(stack, expected_rollups(clicks + late, DEFAULT, {("hour", hour)}))


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


def test_the_builder_racing_a_writer_of_a_minute_of_its_hour_ends_exact(stack: Stack) -> None:
    writer, _ = durable_writer(stack)
    failures: list[BaseException] = []
    sent: dict[int, list[Click]] = {}
    hours = [_past_hour(3) + i * HOUR for i in range(3)]
    set_watermark(stack, hours[-1] + HOUR)
    for hour in hours:
        for minute in (hour, hour + MINUTE):
            sent[minute] = _many_clicks(minute, f"r{minute}", 2000)
            writer.write(sent[minute])
            _write_slices(stack, minute, DEFAULT)
    for round_, hour in enumerate(hours):
        # The raced minute loses some ads (its new revision subtracts and adds).
        raced = hour + MINUTE
        sql(stack, "DELETE FROM raw.ad_clicks WHERE minute = :m AND ad_id < :a",
            m=to_datetime(raced), a=f"ad-{100 * (round_ + 1):05d}")
        sent[raced] = _many_clicks(raced, f"r{raced}", 2000, dropped=100 * (round_ + 1))
        barrier = threading.Barrier(2)

        def build(hour: int = hour, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait(timeout=30)
                _build(stack, "hour", hour)
            except BaseException as exc:
                failures.append(exc)

        def rewrite(raced: int = raced, barrier: threading.Barrier = barrier) -> None:
            try:
                _write_slices(stack, raced, DEFAULT, barrier)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=build), threading.Thread(target=rewrite)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not failures, failures
        assert every_slice("hour", hour) <= marks(stack)
    assert_rollups_are(stack, expected_rollups([c for cs in sent.values() for c in cs],
                                               DEFAULT, {("hour", h) for h in hours}))


def test_the_sweep_builds_an_hour_whose_trigger_was_missed_and_a_day_from_its_hours(
        stack: Stack, celery_worker: Any) -> None:
    from farloom_tasks import tasks

    day = start_of(time.time() - 4 * DAY, DAY)
    minutes = [day + 3 * HOUR + 5 * MINUTE, day + 3 * HOUR + 6 * MINUTE, day + 17 * HOUR]
    writer, _ = durable_writer(stack)
    clicks = [c for m in minutes for c in _clicks(m, f"s{m}", 50)]
    writer.write(clicks)
    for minute in minutes:  # none is an hour's last minute: no trigger ever runs
        _write_slices(stack, minute, DEFAULT)
    set_watermark(stack, day + 17 * HOUR + 30 * MINUTE)  # the day's hour 17 is not closed
    first = tasks.sweep_slice_rollups.delay().get(timeout=120)
    assert {(b["grain"], b["period"]) for b in first["built"]} == {("hour", day + 3 * HOUR)}
    assert marks(stack) == every_slice("hour", day + 3 * HOUR)

    set_watermark(stack, day + DAY)
    tasks.sweep_slice_rollups.delay().get(timeout=300)
    hours = {("hour", h) for h in range(day, day + DAY, HOUR)}
    want_marks = set().union(*(every_slice(g, p) for g, p in hours | {("day", day)}))
    assert marks(stack) == want_marks  # every hour (the empty ones too), then the day
    assert_rollups_are(stack, expected_rollups(clicks, DEFAULT, hours | {("day", day)}))
    again = tasks.sweep_slice_rollups.delay().get(timeout=120)
    assert again["built"] == []

    # A late click on a minute of the built day goes to its hour and the day.
    late = _clicks(minutes[2], "late", 30)
    writer.write(late)
    _write_slices(stack, minutes[2], DEFAULT)
    assert_rollups_are(stack, expected_rollups(clicks + late, DEFAULT, hours | {("day", day)}))


def test_two_minutes_of_one_built_hour_written_at_once_end_exact_without_deadlock(
        stack: Stack) -> None:
    hour = _past_hour()
    minutes = [hour + MINUTE, hour + 2 * MINUTE]
    set_watermark(stack, hour + HOUR)
    writer, _ = durable_writer(stack)
    # The same ads in both minutes: both writers upsert the same hour rows.
    sent = {m: _many_clicks(m, f"w{m}", 3000) for m in minutes}
    writer.write([c for m in minutes for c in sent[m]])
    for minute in minutes:
        _write_slices(stack, minute, DEFAULT)
    _build(stack, "hour", hour)
    failures: list[BaseException] = []

    def write(minute: int, barrier: threading.Barrier) -> None:
        try:
            _write_slices(stack, minute, DEFAULT, barrier)
        except BaseException as exc:  # a deadlock would land here
            failures.append(exc)

    for round_ in range(1, 3):
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
            [c for m in minutes for c in sent[m]], DEFAULT, {("hour", hour)}))


def _reconcile(stack: Stack, start: int, end: int) -> Any:
    """A reconciliation run of [start, end] (its minute replays are not started: these
    tests write raw and slices without closing, so every minute reads as differing)."""
    engine = stack.engine()
    try:
        return reconcile.reconcile(engine, start=start, end=end, trigger="test",
                                   retry_seconds=60, replay=lambda minute: None,
                                   slices=DEFAULT, recompute_slices=lambda minute: None)
    finally:
        engine.dispose()


def test_reconciliation_checks_built_periods_only_and_repairs_damaged_ones(
        stack: Stack) -> None:
    day = start_of(time.time() - 3 * DAY, DAY)
    hour = day + 5 * HOUR
    minutes = [hour + MINUTE, hour + 2 * MINUTE, day + 9 * HOUR]  # hour 9 stays unbuilt
    writer, _ = durable_writer(stack)
    clicks = [c for m in minutes for c in _clicks(m, f"c{m}", 60)]
    writer.write(clicks)
    for minute in minutes:
        _write_slices(stack, minute, DEFAULT)
    set_watermark(stack, day + DAY)
    _build(stack, "hour", hour)
    built = {("hour", hour)}
    sql(stack, "UPDATE agg.slice_ad_clicks_per_hour SET clicks = clicks + 5 "
        "WHERE hour = :h AND slice = 'country' AND value = 'US' AND ad_id = 'a'",
        h=to_datetime(hour))
    sql(stack, "DELETE FROM agg.slice_totals_per_hour WHERE hour = :h AND slice = 'campaign' "
        "AND value = 'c1'", h=to_datetime(hour))
    sql(stack, "INSERT INTO agg.slice_ad_clicks_per_hour VALUES ('advertiser', 'adv9', :h, "
        "'ghost', 4)", h=to_datetime(hour))
    # A click moved from one ad to another in one value: every sum stays right, so only
    # the full per-ad check (once per built period) can see it.
    want = expected_rollups(clicks, DEFAULT, built)
    value, (richer, poorer) = next(
        (v, ads) for v in ("mobile", "desktop") for ads in [sorted(
            (a for (g, _, s, vv, a) in want if g == "hour" and s == "device" and vv == v
             and a is not None), key=lambda a: -want[("hour", hour, "device", v, a)])[:2]]
        if len(ads) == 2)
    sql(stack, "UPDATE agg.slice_ad_clicks_per_hour SET clicks = clicks + "
        "CASE ad_id WHEN :p THEN 1 ELSE -1 END WHERE hour = :h AND slice = 'device' "
        "AND value = :v AND ad_id IN (:r, :p)", h=to_datetime(hour), v=value, r=richer,
        p=poorer)

    first = _reconcile(stack, minutes[0], minutes[-1])
    second = _reconcile(stack, minutes[0], minutes[-1])

    assert (len(first.slice_rollup_findings), first.slice_rollups_fixed) == (4, 4)
    assert not first.slice_findings  # the slices agree with raw: only rollups differ
    # Only the built hour's 4 slices are checked: hour 9 and the day are not built.
    assert first.slice_rollups_checked == 4
    assert (len(second.slice_rollup_findings), second.slice_rollups_checked) == (0, 4)
    found = sql(stack, "SELECT grain, extract(epoch FROM period)::bigint, slice, "
                "fixed FROM agg.reconciliation_slice_rollup_findings "
                "WHERE run_id = :r ORDER BY 1, 3", r=first.run_id)
    assert [tuple(row) for row in found] == [
        ("hour", hour, "advertiser", True), ("hour", hour, "campaign", True),
        ("hour", hour, "country", True), ("hour", hour, "device", True)]
    assert_rollups_are(stack, expected_rollups(clicks, DEFAULT, built))
    checked = sql(stack, "SELECT count(*) FROM agg.slice_rollup_periods "
                  "WHERE fully_checked_at IS NOT NULL")
    assert checked[0][0] == 4  # each repaired or found equal in full once

    # The day built from its hours, then damaged: found by the cheap check (its ad rows
    # no longer sum to its totals) and rebuilt from its hours.
    _build(stack, "day", day)
    built |= {("hour", h) for h in range(day, day + DAY, HOUR)} | {("day", day)}
    assert_rollups_are(stack, expected_rollups(clicks, DEFAULT, built))
    sql(stack, "UPDATE agg.slice_ad_clicks_per_day SET clicks = clicks + 2 "
        "WHERE day = :d AND slice = 'device' AND value = 'mobile' AND ad_id = 'a'",
        d=to_datetime(day))
    third = _reconcile(stack, minutes[0], minutes[-1])
    assert [(f.grain, f.slice) for f in third.slice_rollup_findings] == [("day", "device")]
    # Checked: hours 5 to 9 (the range's) and the day, 4 slices each.
    assert third.slice_rollups_fixed == 1 and third.slice_rollups_checked == 4 * (5 + 1)
    assert_rollups_are(stack, expected_rollups(clicks, DEFAULT, built))


def test_slice_rollups_outlive_dropped_slice_minutes_and_reconciliation_then_skips_them(
        ) -> None:
    # A stack of its own: the session's keeps (empty) partitions of the tests before this
    # one, and the retention run below would drop those of their days too, which the
    # reconciliation over this test's range would then refuse as dropped minutes.
    with isolated_stack() as stack:
        now = time.time()
        old_hour, kept_hour = start_of(now - 6 * DAY, DAY) + HOUR, start_of(now - DAY, DAY) + HOUR
        old, kept = [old_hour, old_hour + MINUTE], [kept_hour, kept_hour + MINUTE]
        writer, _ = durable_writer(stack)
        clicks = [c for m in old + kept for c in _clicks(m, f"r{m}", 40)]
        writer.write(clicks)
        for minute in old + kept:
            _write_slices(stack, minute, DEFAULT)
        set_watermark(stack, start_of(now, HOUR) - MINUTE)
        for day in (start_of(old_hour, DAY), start_of(kept_hour, DAY)):
            _build(stack, "day", day)
        built = {(g, start_of(m, length)) for m in old + kept for g, length in GRAINS}
        want = expected_rollups(clicks, DEFAULT, built)
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
        # An hour over a dropped partition is never built (it would read as no clicks).
        empty_old_hour = start_of(old_hour, DAY) + 7 * HOUR
        sql(stack, "DELETE FROM agg.slice_rollup_periods WHERE grain = 'hour' AND period = :h",
            h=to_datetime(empty_old_hour))
        _build(stack, "hour", empty_old_hour)
        assert not any(p == empty_old_hour for _, p, _ in marks(stack))

        # Damage one row of each day: only the kept day can still be checked and repaired.
        for day in (start_of(old_hour, DAY), start_of(kept_hour, DAY)):
            sql(stack, "UPDATE agg.slice_totals_per_day SET clicks = clicks + 3 "
                "WHERE day = :d AND slice = 'country' AND value = 'US'", d=to_datetime(day))
        summary = reconcile.reconcile(stack.engine(), start=old[0], end=kept[-1], trigger="test",
                                      retry_seconds=60, replay=lambda minute: None)

        assert [(f.grain, f.period, f.slice) for f in summary.slice_rollup_findings] == [
            ("day", start_of(kept_hour, DAY), "country")]
        assert summary.slice_rollups_fixed == 1
        # Every built, checkable (grain, period, slice) the range touches: of the kept day,
        # its hours up to the range's end (hour 0, hour 1) and the day, 4 slices each.
        assert summary.slice_rollups_checked == 4 * (2 + 1)
        want[("day", start_of(old_hour, DAY), "country", "US", None)] += 3
        assert_rollups_are(stack, want)
