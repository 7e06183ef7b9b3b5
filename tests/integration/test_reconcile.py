"""Reconciliation against the real worker: corruption is found, recorded and repaired."""

from __future__ import annotations

import time

import pytest

from farloom_tasks.core.windows import MINUTE, iso, last_due_minute, to_datetime
from tests.support.database import sql
from tests.support.minute_checks import (
    assert_agg_is,
    assert_rollups_are,
    clicks_for,
    counted,
    durable_writer,
    set_watermark,
    wait_published,
    write_aggregates,
)
from tests.support.stack import Stack

pytestmark = pytest.mark.usefixtures("celery_worker")

ADS = {"a": 5, "b": 3, "c": 3, **{f"q{i}": 1 for i in range(9)}}


def _tick() -> None:
    from farloom_tasks import tasks

    tasks.close_due_minutes.delay().get(timeout=60)


@pytest.mark.usefixtures("aggregate_writer")
def test_reconciliation_finds_records_and_fixes_minutes_corrupted_on_purpose(
        stack: Stack) -> None:
    newest = last_due_minute(time.time(), 5.0) - MINUTE
    minutes = [newest - 2 * MINUTE, newest - MINUTE, newest]
    set_watermark(stack, minutes[0] - MINUTE)
    writer, _ = durable_writer(stack)
    clicks = clicks_for(minutes[0], "k0", ADS) + clicks_for(minutes[1], "k1", ADS)
    writer.write(clicks)
    wait_published(stack, minutes, tick=_tick)
    write_aggregates(stack)
    assert_agg_is(stack, counted(clicks), minutes[:2])

    # One ad miscounted, one minute's totals gone, and phantom clicks where raw has none.
    sql(stack, "UPDATE agg.ad_clicks_per_minute SET clicks = clicks + 1 "
        "WHERE minute = :m AND ad_id = 'b'", m=to_datetime(minutes[0]))
    sql(stack, "DELETE FROM agg.minute_totals WHERE minute = :m", m=to_datetime(minutes[1]))
    # ...long after it was closed: a fresh close could still be on its way to agg.
    sql(stack, "UPDATE agg.minute_closes SET requested_at = now() - interval '1 hour', "
        "published_at = now() - interval '1 hour' WHERE minute = :m", m=to_datetime(minutes[1]))
    sql(stack, "INSERT INTO agg.ad_clicks_per_minute (minute, ad_id, clicks, revision) "
        "VALUES (:m, 'ghost', 7, 1)", m=to_datetime(minutes[2]))

    done = stack.farloom("reconcile", iso(minutes[0]), iso(minutes[2]), "--wait",
                         "--timeout", "90")

    assert done.returncode == 0, done.stderr[-2000:]
    assert_agg_is(stack, counted(clicks), minutes)
    # The minute rows changed by hand left their rollups behind; the run recomputed
    # those, and the replays' changes reached them too.
    assert_rollups_are(stack, counted(clicks))
    runs = sql(stack, "SELECT minutes_checked, minutes_differing, minutes_fixed "
               "FROM agg.reconciliation_runs")
    assert [tuple(r) for r in runs] == [(3, 3, 3)]
    findings = sql(stack, "SELECT extract(epoch FROM minute)::bigint, raw_clicks, agg_clicks, "
                   "differing_ads, fixed FROM agg.reconciliation_findings ORDER BY minute")
    total = sum(ADS.values())
    assert [tuple(f) for f in findings] == [
        (minutes[0], total, total, 1, True),
        (minutes[1], total, None, 0, True),
        (minutes[2], 0, 0, 1, True),
    ]

    again = stack.farloom("reconcile", iso(minutes[0]), iso(minutes[2]))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "0 differed" in again.stdout
