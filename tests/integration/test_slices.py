"""Slices through the real worker: every slice of every closed minute equals the clicks sent.

The expected counts are computed here in Python from the clicks the test wrote,
never from raw, and compared per (minute, slice, value) with the whole ranked
arrays (so the top k, their head, too).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

import pytest

from farloom_tasks.core.clicks import Click
from farloom_tasks.core.dimensions import Slice, parse_dimensions
from farloom_tasks.core.windows import MINUTE, last_due_minute, minute_of, to_datetime
from farloom_tasks.pipeline import slice_aggregation
from farloom_tasks.stores import slices as slice_store
from farloom_tasks.stores.transactions import transaction
from tests.support.database import sql
from tests.support.minute_checks import (
    closes,
    durable_writer,
    set_watermark,
    wait_published,
    write_aggregates,
)
from tests.support.stack import Stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("celery_worker")

DEFAULT = parse_dimensions("country,device")
WITH_COMBINATION = parse_dimensions("country,device,country*device")
# ad -> (campaign, advertiser); "x" and "ü" have no owner and so are in no owner value.
OWNERS = {"a": ("c1", "adv1"), "b": ("c1", "adv1"), "c": ("c2", "adv1"),
          "d": ("c3", "adv2"), "e": ("c3", "adv2")}
ADS = ["a", "b", "c", "d", "e", "x", "ü"]
COUNTRIES = ["US", "DE", None, "FR"]
DEVICES = ["mobile", "desktop", None]

Stored = dict[tuple[int, str, str], tuple[int, int, list[str], list[int]]]


def _clicks(minute: int, prefix: str, n: int) -> list[Click]:
    """``n`` clicks over ``minute``, spread unevenly over ads, countries and devices."""
    clicks = []
    for i in range(n):
        ad = ADS[(i * i) % len(ADS)]
        campaign, advertiser = OWNERS.get(ad, (None, None))
        clicks.append(Click(f"{prefix}-{i}", ad, minute + (i * 7 % 60) + 0.5,
                            country=COUNTRIES[i % len(COUNTRIES)],
                            device=DEVICES[(i // 2) % len(DEVICES)],
                            campaign_id=campaign, advertiser_id=advertiser))
    return clicks


def _value(click: Click, name: str) -> str | None:
    if name in ("campaign", "advertiser"):
        owner = OWNERS.get(click.ad_id)
        return None if owner is None else owner[0 if name == "campaign" else 1]
    parts = [getattr(click, dimension) for dimension in name.split("*")]
    return None if None in parts else "*".join(parts)


def expected(clicks: Iterable[Click], slices: Sequence[Slice]) -> Stored:
    """What agg.slice_values must hold: distinct click ids, every ad ranked."""
    unique: dict[str, Click] = {}
    for click in clicks:
        unique.setdefault(click.click_id, click)
    per_value: dict[tuple[int, str, str], Counter[str]] = {}
    for click in unique.values():
        for name in slice_store.slice_names(slices):
            value = _value(click, name)
            if value is not None:
                key = (minute_of(click.clicked_at), name, value)
                per_value.setdefault(key, Counter())[click.ad_id] += 1
    result: Stored = {}
    for key, ads in per_value.items():
        # Ranked as the top k is: clicks descending, then ad_id in code-point order.
        ranked = sorted(ads.items(), key=lambda item: (-item[1], item[0]))
        result[key] = (sum(ads.values()), len(ads), [a for a, _ in ranked],
                       [c for _, c in ranked])
    return result


def stored(stack: Stack, minutes: Sequence[int]) -> Stored:
    rows = sql(stack, "SELECT extract(epoch FROM minute)::bigint, slice, value, clicks, "
               "distinct_ads, ad_ids, ad_clicks FROM agg.slice_values "
               "WHERE minute = ANY(:ms)", ms=[to_datetime(m) for m in minutes])
    return {(int(m), s, v): (int(c), int(d), list(ids), [int(x) for x in counts])
            for m, s, v, c, d, ids, counts in rows}


def slice_revisions(stack: Stack, minute: int) -> dict[str, int]:
    rows = sql(stack, "SELECT slice, revision FROM agg.slice_minutes WHERE minute = :m",
               m=to_datetime(minute))
    return {s: int(r) for s, r in rows}


def wait_slices(stack: Stack, minutes: Sequence[int], slices: Sequence[Slice] = DEFAULT,
                ) -> dict[int, int]:
    """Wait until every slice of every minute holds the minute's published revision."""
    names = slice_store.slice_names(slices)

    def done() -> dict[int, int] | None:
        published = {m: p for m, (_, _, p) in closes(stack, minutes).items()}
        for minute in minutes:
            revisions = slice_revisions(stack, minute)
            if published.get(minute) is None or any(
                    revisions.get(n, 0) < published[minute] for n in names):
                return None
        return {m: int(p) for m, p in published.items() if p is not None}

    return wait_for(f"slices of {list(minutes)} at their published revision", done, poll=0.25)


def _tick() -> None:
    from farloom_tasks import tasks

    tasks.close_due_minutes.delay().get(timeout=60)


@pytest.fixture
def closed(stack: Stack) -> Iterator[tuple[list[int], list[Click]]]:
    """Two minutes closed through the worker, with their slices made."""
    newest = last_due_minute(time.time(), 5.0) - MINUTE
    minutes = [newest - MINUTE, newest]
    set_watermark(stack, minutes[0] - MINUTE)
    writer, _ = durable_writer(stack)
    clicks = _clicks(minutes[0], "m0", 90) + _clicks(minutes[1], "m1", 57)
    writer.write(clicks)
    wait_published(stack, minutes, tick=_tick)
    wait_slices(stack, minutes)
    yield minutes, clicks


def _recompute(stack: Stack, minute: int, slices: Sequence[Slice]) -> int:
    engine = stack.engine()
    try:
        with transaction(engine) as cursor:
            revision = slice_store.forced_revision(cursor)
        slice_aggregation.aggregate(engine, slices, minute=minute, revision=revision,
                                    partition_hours=stack.settings.minute_partition_hours,
                                    work_mem_mb=stack.settings.slice_work_mem_mb)
        return revision
    finally:
        engine.dispose()


def test_every_slice_of_a_closed_minute_equals_the_clicks_sent(
        stack: Stack, closed: tuple[list[int], list[Click]]) -> None:
    minutes, clicks = closed
    want = expected(clicks, DEFAULT)
    assert stored(stack, minutes) == want
    assert {k[1] for k in want} == {"country", "device", "campaign", "advertiser"}
    totals = sql(stack, "SELECT slice, sum(clicks) FROM agg.slice_minutes "
                 "WHERE minute = ANY(:ms) GROUP BY slice",
                 ms=[to_datetime(m) for m in minutes])
    assert {s: int(c) for s, c in totals} == {
        name: sum(v[0] for k, v in want.items() if k[1] == name)
        for name in slice_store.slice_names(DEFAULT)}


def test_a_configured_combination_is_a_slice_of_its_own(
        stack: Stack, closed: tuple[list[int], list[Click]]) -> None:
    minutes, clicks = closed
    for minute in minutes:
        _recompute(stack, minute, WITH_COMBINATION)
    want = expected(clicks, WITH_COMBINATION)
    assert stored(stack, minutes) == want
    assert ("US*mobile" in {k[2] for k in want if k[1] == "country*device"})


def test_duplicates_and_late_clicks_remake_the_slices_at_a_higher_revision(
        stack: Stack, closed: tuple[list[int], list[Click]]) -> None:
    minutes, clicks = closed
    before = {m: min(slice_revisions(stack, m).values()) for m in minutes}
    writer, _ = durable_writer(stack)
    late = _clicks(minutes[0], "late", 40)
    writer.write(clicks[:30] + late)  # 30 duplicates of stored click ids, 40 new

    wait_published(stack, [minutes[0]], after=before[minutes[0]], tick=_tick)
    wait_slices(stack, minutes)

    assert stored(stack, minutes) == expected(clicks + late, DEFAULT)
    assert min(slice_revisions(stack, minutes[0]).values()) > before[minutes[0]]
    assert min(slice_revisions(stack, minutes[1]).values()) == before[minutes[1]]


def test_the_task_run_twice_or_with_an_older_revision_changes_nothing(
        stack: Stack, closed: tuple[list[int], list[Click]]) -> None:
    from farloom_tasks import tasks

    minutes, clicks = closed
    minute = minutes[0]
    revision = min(slice_revisions(stack, minute).values())
    sql(stack, "DELETE FROM raw.ad_clicks WHERE minute = :m AND ad_id = 'a'",
        m=to_datetime(minute))  # so a recompute would show

    again = tasks.aggregate_slices.delay(minute, revision).get(timeout=60)
    older = tasks.aggregate_slices.delay(minute, revision - 1).get(timeout=60)

    assert again["slices"] == [] and older["slices"] == []
    assert stored(stack, minutes) == expected(clicks, DEFAULT)
    assert min(slice_revisions(stack, minute).values()) == revision


def test_a_replay_remakes_the_slices_from_raw(
        stack: Stack, closed: tuple[list[int], list[Click]]) -> None:
    from farloom_tasks import tasks

    minutes, clicks = closed
    gone = {c.click_id for c in clicks if c.ad_id == "b" and minute_of(c.clicked_at) == minutes[0]}
    sql(stack, "DELETE FROM raw.ad_clicks WHERE click_id = ANY(:ids)", ids=list(gone))

    done = tasks.replay_minute.delay(minutes[0], "raw").get(timeout=60)
    wait_slices(stack, minutes)

    assert min(slice_revisions(stack, minutes[0]).values()) == done["revision"]
    assert stored(stack, minutes) == expected(
        [c for c in clicks if c.click_id not in gone], DEFAULT)


def test_reconciliation_finds_and_fixes_a_damaged_slice_row_and_a_missing_minute(
        stack: Stack, closed: tuple[list[int], list[Click]]) -> None:
    from farloom_tasks import tasks

    minutes, clicks = closed
    write_aggregates(stack)  # the per-ad rows agree with raw: only slices differ
    sql(stack, "UPDATE agg.slice_values SET ad_clicks[1] = ad_clicks[1] + 1 "
        "WHERE minute = :m AND slice = 'country' AND value = 'US'", m=to_datetime(minutes[0]))
    # The slice task of the second minute failed for good, long after it was published.
    sql(stack, "DELETE FROM agg.slice_values WHERE minute = :m", m=to_datetime(minutes[1]))
    sql(stack, "DELETE FROM agg.slice_minutes WHERE minute = :m", m=to_datetime(minutes[1]))
    sql(stack, "UPDATE agg.minute_closes SET requested_at = now() - interval '1 hour', "
        "published_at = now() - interval '1 hour' WHERE minute = :m", m=to_datetime(minutes[1]))

    first = tasks.reconcile.delay(minutes[0], minutes[1]).get(timeout=120)
    second = tasks.reconcile.delay(minutes[0], minutes[1]).get(timeout=120)

    assert (first["minutes_differing"], first["slices_differing"], first["slices_fixed"]) == (
        0, 2, 2)
    assert second["slices_differing"] == 0
    assert stored(stack, minutes) == expected(clicks, DEFAULT)
    found = sql(stack, "SELECT extract(epoch FROM minute)::bigint, differing_values, "
                "missing_slices, fixed FROM agg.reconciliation_slice_findings "
                "WHERE run_id = :r ORDER BY 1", r=first["run_id"])
    assert [tuple(row) for row in found] == [
        (minutes[0], 1, 0, True),
        (minutes[1], len({k for k in expected(clicks, DEFAULT) if k[0] == minutes[1]}), 4, True)]


def test_minute_retention_drops_the_slice_partitions_and_revisions_of_dropped_minutes(
        stack: Stack) -> None:
    from dataclasses import replace

    from farloom_tasks.core.partitions import DAY, start_of
    from farloom_tasks.pipeline import retention
    from farloom_tasks.stores import partitions

    now = time.time()
    old_minute, kept_minute = start_of(now - 6 * DAY, DAY) + 600, start_of(now - DAY, DAY) + 600
    engine = stack.engine()
    try:
        for minute in (old_minute, kept_minute):
            with transaction(engine) as cursor:
                partitions.ensure(cursor, partitions.SLICES, minute, DAY)
            sql(stack, "INSERT INTO agg.slice_values (minute, slice, value, revision, clicks, "
                "distinct_ads, ad_ids, ad_clicks) VALUES (:m, 'country', 'US', 1, 3, 1, "
                "'{a}', '{3}')", m=to_datetime(minute))
            sql(stack, "INSERT INTO agg.slice_minutes (minute, slice, revision, clicks) "
                "VALUES (:m, 'country', 1, 3)", m=to_datetime(minute))
        report = retention.maintain(
            engine, replace(stack.settings, minute_retention_days=3, minute_partition_hours=24),
            now)
    finally:
        engine.dispose()

    # The stack is shared with the tests before this one on its worker, whose older
    # slice partitions this retention run may drop too: judge this test's two days only.
    dropped = {int(r[0]) for r in sql(
        stack, "SELECT extract(epoch FROM range_start)::bigint FROM raw.partitions "
        "WHERE parent = 'agg.slice_values' AND dropped_at IS NOT NULL")}
    assert start_of(old_minute, DAY) in dropped
    assert start_of(kept_minute, DAY) not in dropped
    ours = {to_datetime(old_minute), to_datetime(kept_minute)}
    for table in ("agg.slice_values", "agg.slice_minutes"):
        assert [r[0] for r in sql(stack, f"SELECT minute FROM {table}")
                if r[0] in ours] == [to_datetime(kept_minute)], table
    assert report.trimmed["agg.slice_minutes"] >= 1


def test_a_range_replay_remakes_every_minutes_slices(
        stack: Stack, closed: tuple[list[int], list[Click]]) -> None:
    from farloom_tasks import tasks

    minutes, clicks = closed
    before = {m: min(slice_revisions(stack, m).values()) for m in minutes}
    sql(stack, "DELETE FROM agg.slice_values")  # damage the replay must not depend on

    revisions = tasks.replay_minutes.delay(minutes, "raw").get(timeout=120)
    wait_slices(stack, minutes)

    for minute in minutes:
        assert min(slice_revisions(stack, minute).values()) == revisions[str(minute)]
        assert revisions[str(minute)] > before[minute]
    assert stored(stack, minutes) == expected(clicks, DEFAULT)
