"""``farloom import`` of CSV and NDJSON files into the test stack's broker."""

from __future__ import annotations

import csv
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from farloom_tasks.core.windows import minute_of
from tests.integration.click_queue import drain
from tests.support.stack import PROJECT_ROOT, Stack
from workers.import_file import timestamp_for_contract

SAMPLE = PROJECT_ROOT.parent / "shared" / "data" / "talkingdata_train_sample.csv"
SAMPLE_ARGS = ("import", str(SAMPLE), "--ad-column", "channel", "--time-column", "click_time",
               "--no-progress")


def _counts_from_the_csv() -> Counter[tuple[int, str]]:
    counts: Counter[tuple[int, str]] = Counter()
    with SAMPLE.open(newline="") as handle:
        for row in csv.DictReader(handle):
            moment = datetime.strptime(row["click_time"], "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
            counts[(minute_of(moment.timestamp()), row["channel"])] += 1
    return counts


def test_naive_timestamps_are_read_as_utc_and_sent_as_rfc3339() -> None:
    assert timestamp_for_contract("2017-11-07 9:30") == "2017-11-07T09:30:00Z"
    assert timestamp_for_contract("2017-11-07 13:40:05.25") == "2017-11-07T13:40:05.25Z"
    assert timestamp_for_contract("2017-11-07T09:30:00+02:00") == "2017-11-07T09:30:00+02:00"
    assert timestamp_for_contract("1510047000") == 1510047000.0
    assert timestamp_for_contract("2017-13-07 9:30") is None
    assert timestamp_for_contract("soon") is None


def test_importing_the_talkingdata_sample_publishes_its_exact_minute_channel_counts(
        stack: Stack) -> None:
    result = stack.farloom(*SAMPLE_ARGS, timeout=180)
    assert result.returncode == 0, result.stderr
    assert "100,000 clicks" in result.stdout

    clicks = [click for message in drain(stack) for click in message.decoded().clicks]
    assert len(clicks) == 100_000
    assert {click.click_id for click in clicks} == {str(n) for n in range(1, 100_001)}
    published = Counter((minute_of(click.clicked_at), click.ad_id) for click in clicks)
    assert published == _counts_from_the_csv()


def test_an_unmappable_row_is_reported_with_its_line_number_and_still_published(
        stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "clicks.csv"
    source.write_text("when,ad\n2026-11-01 10:00,a1\nnot a time,a2\n2026-11-01 10:01,\n")
    result = stack.farloom("import", str(source), "--ad-column", "ad", "--time-column", "when",
                           "--id-prefix", "f-", "--no-progress", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "line 3: when 'not a time' is not a timestamp" in result.stderr
    assert "line 4: no ad" in result.stderr
    assert "2 could not be mapped" in result.stdout

    decoded = [message.decoded() for message in drain(stack)]
    assert [click.click_id for message in decoded for click in message.clicks] == ["f-1"]
    codes = sorted(letter.rejection.code for message in decoded
                   for letter in message.dead_letters)
    assert codes == ["bad_timestamp", "missing_field"]


def test_importing_the_talkingdata_sample_stores_exactly_100000_raw_rows(stack: Stack) -> None:
    result = stack.farloom(*SAMPLE_ARGS, timeout=180)
    assert result.returncode == 0, result.stderr

    ingest = stack.farloom("ingest", "--burst", timeout=300)
    assert ingest.returncode == 0, ingest.stderr
    with stack.engine().connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM raw.ad_clicks")).scalar() == 100_000


def test_an_ndjson_file_keeps_its_fields_and_publishes_a_broken_line_as_it_is(
        stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "clicks.ndjson"
    source.write_text(
        '{"click_id": "n1", "ad_id": 5, "clicked_at": "2026-11-01T10:00:00Z", "country": "fr"}\n'
        "\n"
        "{broken\n"
        '{"ad_id": "a", "clicked_at": 1700000000}\n')
    result = stack.farloom("import", str(source), "--id-column", "click_id", "--no-progress",
                           timeout=60)
    assert result.returncode == 0, result.stderr
    assert "line 3: not JSON" in result.stderr
    assert "line 4: no click_id; used the row number" in result.stderr

    decoded = [message.decoded() for message in drain(stack)]
    clicks = {click.click_id: click for message in decoded for click in message.clicks}
    assert set(clicks) == {"n1", "4"}
    assert (clicks["n1"].ad_id, clicks["n1"].country) == ("5", "FR")
    codes = [letter.rejection.code for message in decoded for letter in message.dead_letters]
    assert codes == ["invalid_json"]


def test_an_import_against_an_unreachable_broker_gives_up_with_a_clear_message(
        stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "one.csv"
    source.write_text("channel,click_time\n7,2017-11-07 9:30\n")
    env = dict(stack.env, FARLOOM_AMQP_URL="amqp://guest:guest@127.0.0.1:1/%2F")

    done = subprocess.run(
        [sys.executable, "-m", "farloom_tasks.cli", "import", str(source), "--ad-column",
         "channel", "--time-column", "click_time", "--give-up-after", "1", "--no-progress"],
        env=env, cwd=PROJECT_ROOT, text=True, capture_output=True, timeout=60)

    assert done.returncode != 0
    assert "RabbitMQ unreachable" in done.stderr and "rabbitmq-server" in done.stderr
    assert "Traceback" not in done.stderr


MAPPED_ARGS = (*SAMPLE_ARGS, "--campaign-column", "app", "--dimension", "device_model=device",
               "--dimension", "os")


def _first_owner_rule_from_the_csv() -> tuple[dict[str, str], set[int]]:
    """Each channel's campaign (the first row's app) and the row numbers naming another."""
    owner: dict[str, str] = {}
    conflicting: set[int] = set()
    with SAMPLE.open(newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=1):
            first = owner.setdefault(row["channel"], row["app"])
            if row["app"] != first:
                conflicting.add(number)
    return owner, conflicting


def test_an_import_with_owner_conflicts_warns_and_fills_the_catalog_with_the_first_owners(
        stack: Stack) -> None:
    owner, conflicting = _first_owner_rule_from_the_csv()

    result = stack.farloom(*MAPPED_ARGS, timeout=240)

    assert result.returncode == 0, result.stderr
    assert (f"warning: {len(conflicting):,} of the 100,000 rows naming an owner contradict"
            in result.stderr)
    assert "ad_owner_mismatch" in result.stderr and "--refuse-owner-conflicts" in result.stderr
    assert f"{len(conflicting):,} contradict their ad's owner" in result.stdout
    with stack.engine().connect() as conn:
        catalog = {str(ad): (campaign, advertiser) for ad, campaign, advertiser in conn.execute(
            sa.text("SELECT ad_id, campaign_id, advertiser_id FROM agg.ads"))}
    assert catalog == {channel: (app, None) for channel, app in owner.items()}

    clicks = {click.click_id: click for message in drain(stack)
              for click in message.decoded().clicks}
    assert len(clicks) == 100_000
    with SAMPLE.open(newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle), start=1):
            click = clicks[str(number)]
            assert (click.ad_id, click.campaign_id, click.device, click.dimensions) == (
                row["channel"], row["app"], None,
                {"device_model": row["device"], "os": row["os"]})


def test_refuse_owner_conflicts_stops_before_publishing_or_writing_anything(
        stack: Stack) -> None:
    _, conflicting = _first_owner_rule_from_the_csv()

    result = stack.farloom(*MAPPED_ARGS, "--refuse-owner-conflicts", timeout=240)

    assert result.returncode == 1, result.stderr
    assert f"warning: {len(conflicting):,} of the 100,000 rows" in result.stderr
    assert "stopped before publishing anything" in result.stderr
    assert drain(stack) == []
    with stack.engine().connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM agg.ads")).scalar() == 0


def test_a_file_without_owner_conflicts_imports_cleanly_under_refuse(
        stack: Stack, tmp_path: Path) -> None:
    source = tmp_path / "owned.csv"
    source.write_text("when,ad,camp,adv,tier\n2026-11-01 10:00,a1,c1,,gold\n"
                      "2026-11-01 10:00,a1,,v1,\n2026-11-01 10:01,a2,c2,v2,silver\n")
    result = stack.farloom("import", str(source), "--ad-column", "ad", "--time-column", "when",
                           "--campaign-column", "camp", "--advertiser-column", "adv",
                           "--dimension", "tier", "--refuse-owner-conflicts", "--no-progress",
                           timeout=60)
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    clicks = [click for message in drain(stack) for click in message.decoded().clicks]
    assert [(c.ad_id, c.campaign_id, c.advertiser_id, c.dimensions) for c in clicks] == [
        ("a1", "c1", None, {"tier": "gold"}), ("a1", None, "v1", None),
        ("a2", "c2", "v2", {"tier": "silver"})]
    with stack.engine().connect() as conn:
        assert sorted(conn.execute(sa.text(
            "SELECT ad_id, campaign_id, advertiser_id FROM agg.ads")).fetchall()) == [
            ("a1", "c1", "v1"), ("a2", "c2", "v2")]


@pytest.mark.parametrize(("flags", "message"), [
    (("--dimension", "device"), "dimension name 'device' is reserved"),
    (("--dimension", "device=device"), "--device-column"),
    (("--dimension", "Device=device"), "must be 1-32 characters of a-z, 0-9 and _"),
    (("--dimension", "os", "--dimension", "os=device"), "dimension 'os' is mapped twice"),
    (("--dimension", "os="), "no column"),
    (("--dimension", "model=phone"), "has no column phone"),
    (("--campaign-column", "campaign"), "has no column campaign"),
])
def test_a_bad_mapping_is_refused_before_anything_is_read_or_published(
        stack: Stack, flags: tuple[str, ...], message: str) -> None:
    result = stack.farloom(*SAMPLE_ARGS, *flags, timeout=60)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert drain(stack) == []
