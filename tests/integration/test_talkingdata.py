"""End to end on real data: a TalkingData hour imported, ingested, replayed, checked."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from farloom_tasks.windows import MINUTE, from_datetime
from tests.celery_worker import celery_worker, session_worker  # noqa: F401 (fixtures)
from tests.minute_checks import aggregate_writer, assert_agg_is, sql  # noqa: F401
from tests.stack import Stack

pytestmark = [pytest.mark.usefixtures("celery_worker"), pytest.mark.slow]

SAMPLE = Path("/work/shared/data/talkingdata_train_sample.csv")
HOUR = "2017-11-06 17"  # 717 clicks over 60 minutes; the whole file is `farloom bench` work


def _hour_of_sample(target: Path) -> Counter[tuple[int, str]]:
    """Write the sample's rows of HOUR to ``target``; return their per-minute channel counts."""
    truth: Counter[tuple[int, str]] = Counter()
    with open(SAMPLE, newline="") as source, open(target, "w", newline="") as out:
        reader = csv.DictReader(source)
        writer = csv.DictWriter(out, fieldnames=reader.fieldnames or [])
        writer.writeheader()
        for row in reader:
            if row["click_time"].startswith(HOUR + ":"):
                writer.writerow(row)
                moment = datetime.strptime(row["click_time"], "%Y-%m-%d %H:%M")
                truth[(from_datetime(moment.replace(tzinfo=UTC)), row["channel"])] += 1
    return truth


@pytest.mark.skipif(not SAMPLE.exists(), reason="the TalkingData sample is not on this machine")
@pytest.mark.usefixtures("aggregate_writer")
def test_a_talkingdata_hour_imported_and_replayed_from_raw_matches_the_csv(
        stack: Stack, tmp_path: Path) -> None:
    from farloom_tasks import tasks

    tasks.close_due_minutes.delay().get(timeout=60)  # a fresh install closes its first minute
    subset = tmp_path / "hour.csv"
    truth = _hour_of_sample(subset)
    assert sum(truth.values()) == 717

    for command in (["import", str(subset), "--ad-column", "channel", "--time-column",
                     "click_time", "--id-prefix", "td-", "--no-progress"],
                    ["import", str(subset), "--ad-column", "channel", "--time-column",
                     "click_time", "--id-prefix", "td-", "--no-progress"],  # imported twice
                    ["ingest", "--burst"],
                    ["replay", f"{HOUR}:00", f"{HOUR}:59", "--source", "raw", "--wait",
                     "--timeout", "120"]):
        done = stack.farloom(*command)
        assert done.returncode == 0, (command, done.stderr[-2000:])

    first = from_datetime(datetime.strptime(f"{HOUR}:00", "%Y-%m-%d %H:%M").replace(tzinfo=UTC))
    assert_agg_is(stack, truth, [first + i * MINUTE for i in range(60)])
    late = sql(stack, "SELECT count(*), sum(late_clicks) FROM agg.late_minutes")[0]
    assert tuple(late) == (len({m for m, _ in truth}), 717)  # every click arrived late
