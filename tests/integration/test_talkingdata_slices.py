"""Real data through every slice: the TalkingData sample mapped onto custom dimensions.

The whole sample is imported as the README shows: ``channel`` as the ad, ``app``
as its campaign, the phone-model ``device`` column as the custom dimension
``device_model`` and ``os`` as ``os``. A real Celery worker configured with
``FARLOOM_DIMENSIONS=country,device,device_model,os,device_model*os`` closes
and replays the sample's 4,309 minutes (``farloom replay``, the range replay
``replay_minutes``) and makes every minute's slices.

The expectation is computed here from the CSV with the csv module, applying
the ads catalog's rule in the test's own code: a channel's campaign is the
``app`` of its first row in the file, and every later row of that channel
naming another app is dead-lettered as ``ad_owner_mismatch``. Every slice
(per minute, per value, per ad, ranked, so the top k too) must equal it, and
the ledger must hold exactly the dead-lettered rows.
"""

from __future__ import annotations

import csv
import dataclasses
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from farloom_tasks import celery as farloom_celery
from farloom_tasks import processes
from farloom_tasks.core.dimensions import parse_dimensions
from farloom_tasks.core.windows import from_datetime, iso
from farloom_tasks.stores import slices as slice_store
from tests.support.celery_worker import point_app_at, running_worker
from tests.support.database import sql
from tests.support.stack import Stack, isolated_stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow

SAMPLE = Path(__file__).resolve().parents[3] / "shared" / "data" / "talkingdata_train_sample.csv"
DIMENSIONS = "country,device,device_model,os,device_model*os"
SLICES = parse_dimensions(DIMENSIONS)
IMPORT_ARGS = ("import", str(SAMPLE), "--ad-column", "channel", "--time-column", "click_time",
               "--campaign-column", "app", "--dimension", "device_model=device",
               "--dimension", "os", "--no-progress")

Key = tuple[int, str, str]  # (minute, slice, value)


class Truth:
    """What the CSV says, with the first-row-wins owner rule applied here."""

    def __init__(self) -> None:
        self.campaign: dict[str, str] = {}  # channel -> the first row's app
        self.dead_lettered: set[str] = set()  # click ids (row numbers)
        self.per_value: dict[Key, Counter[str]] = defaultdict(Counter)
        self.per_ad: Counter[tuple[int, str]] = Counter()
        with open(SAMPLE, newline="") as source:
            for number, row in enumerate(csv.DictReader(source), start=1):
                channel, app = row["channel"], row["app"]
                if self.campaign.setdefault(channel, app) != app:
                    self.dead_lettered.add(str(number))
                    continue
                moment = datetime.strptime(row["click_time"], "%Y-%m-%d %H:%M")
                minute = from_datetime(moment.replace(tzinfo=UTC))
                self.per_ad[(minute, channel)] += 1
                # No country, no device class and no advertiser: in no value of theirs.
                for name, value in (("device_model", row["device"]), ("os", row["os"]),
                                    ("device_model*os", f"{row['device']}*{row['os']}"),
                                    ("campaign", app)):
                    self.per_value[(minute, name, value)][channel] += 1

    def slice_values(self) -> dict[Key, tuple[int, int, list[str], list[int]]]:
        """Each (minute, slice, value): clicks, distinct ads, every ad ranked as the top k
        is (clicks descending, then ad id in code-point order)."""
        result = {}
        for key, ads in self.per_value.items():
            ranked = sorted(ads.items(), key=lambda item: (-item[1], item[0]))
            result[key] = (sum(ads.values()), len(ads), [a for a, _ in ranked],
                           [c for _, c in ranked])
        return result


@pytest.fixture
def sliced_stack(tmp_path: Path) -> Iterator[Stack]:
    """A stack of its own whose Celery worker makes the custom slices (the session's
    worker, configured with the default dimensions, must not take its tasks)."""
    before = farloom_celery.settings_of(farloom_celery.app)
    with isolated_stack() as stack, running_worker(
            stack, tmp_path / "worker.log", env={"FARLOOM_DIMENSIONS": DIMENSIONS}):
        point_app_at(stack)
        try:
            yield stack
        finally:
            # Later tests of this process may .delay() without pointing the app again.
            point_app_at(dataclasses.replace(stack, settings=before))


def _slices_made(stack: Stack, minutes: list[int]) -> bool:
    """Whether every minute has all its slices at (or past) its published revision."""
    behind = sql(stack, """
        SELECT count(*) FROM agg.minute_closes c CROSS JOIN unnest(CAST(:names AS text[])) n
        WHERE c.minute = ANY(:ms) AND NOT EXISTS (
            SELECT 1 FROM agg.slice_minutes s WHERE s.minute = c.minute AND s.slice = n
              AND s.revision >= c.published_revision)""",
                 names=slice_store.slice_names(SLICES),
                 ms=[datetime.fromtimestamp(m, UTC) for m in minutes])[0][0]
    published = sql(stack, "SELECT count(*) FROM agg.minute_closes WHERE minute = ANY(:ms) "
                    "AND published_revision IS NOT NULL",
                    ms=[datetime.fromtimestamp(m, UTC) for m in minutes])[0][0]
    return int(behind) == 0 and int(published) == len(minutes)


@pytest.mark.skipif(not SAMPLE.exists(), reason="the TalkingData sample is not beside the repo")
# About 100 s on a quiet machine; a slice task per minute (4,309) waits its turn on a
# shared one, so the default 300 s is too little there.
@pytest.mark.timeout(1500)
def test_every_slice_of_the_talkingdata_sample_equals_the_csv(
        sliced_stack: Stack, tmp_path: Path) -> None:
    from farloom_tasks import tasks

    stack = sliced_stack
    truth = Truth()
    assert len(truth.dead_lettered) > 0  # the sample's channels do have several apps
    minutes = sorted({minute for minute, _ in truth.per_ad})
    env = dict(stack.env, FARLOOM_DIMENSIONS=DIMENSIONS)

    tasks.close_due_minutes.delay().get(timeout=60)  # a fresh install closes its first minute
    with open(tmp_path / "writer.log", "w") as log:
        writer = stack.spawn("write-aggregates", log=log, env=env)
        try:
            imported = stack.farloom(*IMPORT_ARGS, env=env, timeout=300)
            assert imported.returncode == 0, imported.stderr[-2000:]
            assert (f"warning: {len(truth.dead_lettered):,} of the 100,000 rows"
                    in imported.stderr)
            for command in (["ingest", "--burst"],
                            ["replay", iso(minutes[0]), iso(minutes[-1]), "--source", "raw",
                             "--wait", "--timeout", "600"]):
                done = stack.farloom(*command, env=env, timeout=660)
                assert done.returncode == 0, (command, done.stderr[-2000:])
        finally:
            processes.stop(writer, grace=20)
    wait_for("every minute's slices at its published revision",
             lambda: _slices_made(stack, minutes) or None, 1200, poll=2.0)

    # The ads catalog and the dead letters follow the first-row rule.
    assert {str(ad): (c, a) for ad, c, a in sql(
        stack, "SELECT ad_id, campaign_id, advertiser_id FROM agg.ads")} == {
        channel: (app, None) for channel, app in truth.campaign.items()}
    ledger = sql(stack, "SELECT reason_code, element FROM raw.rejected_clicks")
    assert Counter(code for code, _ in ledger) == Counter(
        {"ad_owner_mismatch": len(truth.dead_lettered)})
    assert {orjson.loads(bytes(element))["click_id"] for _, element in ledger} == (
        truth.dead_lettered)
    assert sql(stack, "SELECT count(*) FROM raw.ad_clicks")[0][0] == (
        100_000 - len(truth.dead_lettered))

    # Per ad and minute, as the slices' base.
    assert Counter({(int(m), ad): int(n) for m, ad, n in sql(
        stack, "SELECT extract(epoch FROM minute)::bigint, ad_id, clicks "
        "FROM agg.ad_clicks_per_minute")}) == truth.per_ad

    # Every slice: per minute, per value, per ad, ranked (the top k is the arrays' head).
    stored = {(int(m), s, v): (int(c), int(d), list(ids), [int(x) for x in counts])
              for m, s, v, c, d, ids, counts in sql(
                  stack, "SELECT extract(epoch FROM minute)::bigint, slice, value, clicks, "
                  "distinct_ads, ad_ids, ad_clicks FROM agg.slice_values")}
    want = truth.slice_values()
    assert {key[1] for key in want} == {"device_model", "os", "device_model*os", "campaign"}
    missing, extra = want.keys() - stored.keys(), stored.keys() - want.keys()
    assert not missing and not extra, (sorted(missing)[:5], sorted(extra)[:5])
    wrong = [key for key in want if stored[key] != want[key]]
    assert not wrong, [(key, stored[key], want[key]) for key in wrong[:5]]

    # Each (minute, slice)'s total: every configured slice has its row, the slices
    # without values (country, device, advertiser) with 0 clicks.
    totals: Counter[tuple[int, str]] = Counter()
    for (minute, name, _), (clicks, *_) in want.items():
        totals[(minute, name)] += clicks
    found = {(int(m), s): int(c) for m, s, c in sql(
        stack, "SELECT extract(epoch FROM minute)::bigint, slice, clicks "
        "FROM agg.slice_minutes WHERE minute = ANY(:ms)",
        ms=[datetime.fromtimestamp(m, UTC) for m in minutes])}
    assert found == {(minute, name): totals[(minute, name)] for minute in minutes
                     for name in slice_store.slice_names(SLICES)}
