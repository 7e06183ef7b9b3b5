"""End to end on real data: the whole TalkingData sample imported, ingested, replayed, checked.

The expected counts come straight from the CSV with the csv module; agg must
equal them for every one of the sample's minutes (and hold nothing for the
empty minutes in between), per ad, in totals and in the top k.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from farloom_tasks.core import topk
from farloom_tasks.core.windows import MINUTE, from_datetime, iso
from tests.support.database import sql
from tests.support.minute_checks import TEST_K
from tests.support.stack import Stack

pytestmark = [pytest.mark.usefixtures("celery_worker"), pytest.mark.slow]

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "talkingdata_train_sample.csv"


def _counts_from_csv() -> Counter[tuple[int, str]]:
    truth: Counter[tuple[int, str]] = Counter()
    with open(SAMPLE, newline="") as source:
        for row in csv.DictReader(source):
            moment = datetime.strptime(row["click_time"], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
            truth[(from_datetime(moment), row["channel"])] += 1
    return truth


@pytest.mark.skipif(not SAMPLE.exists(), reason="the TalkingData sample is not beside the repo")
@pytest.mark.usefixtures("aggregate_writer")
def test_the_talkingdata_sample_replayed_over_its_whole_range_matches_the_csv(
        stack: Stack) -> None:
    from farloom_tasks import tasks

    truth = _counts_from_csv()
    assert sum(truth.values()) == 100_000
    first, last = min(m for m, _ in truth), max(m for m, _ in truth)

    tasks.close_due_minutes.delay().get(timeout=60)  # a fresh install closes its first minute
    import_args = ["import", str(SAMPLE), "--ad-column", "channel", "--time-column",
                   "click_time", "--no-progress"]
    for command in (import_args, import_args,  # imported twice: every click a duplicate once
                    ["ingest", "--burst"],
                    ["replay", iso(first), iso(last), "--source", "raw", "--wait",
                     "--timeout", "420"]):
        done = stack.farloom(*command, timeout=480)
        assert done.returncode == 0, (command, done.stderr[-2000:])

    assert sql(stack, "SELECT count(*) FROM raw.ad_clicks")[0][0] == 100_000
    found = Counter({(int(m), ad): int(n) for m, ad, n in sql(
        stack, "SELECT extract(epoch FROM minute)::bigint, ad_id, clicks "
        "FROM agg.ad_clicks_per_minute")})
    assert found == truth, f"agg has extra {found - truth}, lacks {truth - found}"

    per_minute: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for (minute, ad), clicks in truth.items():
        per_minute[minute].append((ad, clicks))
    totals = {int(m): (int(c), int(d)) for m, c, d in sql(
        stack, "SELECT extract(epoch FROM minute)::bigint, clicks, distinct_ads "
        "FROM agg.minute_totals WHERE minute BETWEEN to_timestamp(:a) AND to_timestamp(:b)",
        a=first, b=last)}
    every_minute = range(first, last + MINUTE, MINUTE)
    assert totals == {m: (sum(n for _, n in per_minute.get(m, [])), len(per_minute.get(m, [])))
                      for m in every_minute}
    ranked: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for minute, ad, clicks in sql(
            stack, "SELECT extract(epoch FROM minute)::bigint, ad_id, clicks FROM agg.top_ads "
            "ORDER BY minute, rank"):
        ranked[int(minute)].append((ad, int(clicks)))
    assert ranked == {m: topk.top_k(ads, TEST_K) for m, ads in per_minute.items()}
