"""Partition maintenance against the real services: partitions made ahead, raw and minute
retention, archive and restore, beyond_retention dead letters, dropped minutes refused, and
the bookkeeping trims. Old partitions are crafted by storing old clicks with retention 0."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from farloom_tasks.core.clicks import Click
from farloom_tasks.core.partitions import DAY, HOUR, start_of, wanted_ahead
from farloom_tasks.core.windows import MINUTE, iso, to_datetime
from farloom_tasks.pipeline import replay, retention
from farloom_tasks.pipeline.dropped_minutes import MinutesDropped
from farloom_tasks.stores import archive, partitions, topology
from farloom_tasks.stores.raw import RawStore
from farloom_tasks.stores.transactions import transaction
from tests.integration.ingest_support import run_burst
from tests.support.archives import rewrite_without
from tests.support.broker import dead_letters, publish, queue_counts
from tests.support.database import sql
from tests.support.stack import Stack

RAW = partitions.RAW_CLICKS
MINUTES = partitions.MINUTE_COUNTS
COLUMNS = ("click_id, ad_id, clicked_at, minute, user_id, ip::text, country, ingested_at, "
           "device, campaign_id, advertiser_id")
OWNER_COLUMNS = ("device", "campaign_id", "advertiser_id")  # added by migration 0010


def _now() -> float:
    return time.time()


def _store(stack: Stack, clicks: list[Click]) -> None:
    """Store clicks in raw as ingest does (retention 0: any age is accepted)."""
    engine = stack.engine()
    store = RawStore(engine, stack.settings.shard_count, HOUR)
    try:
        store.commit_batch(clicks)
    finally:
        store.close()
        engine.dispose()


def _clicks_in_hour(start: int, prefix: str, count: int) -> list[Click]:
    """``count`` clicks spread over the hour starting at ``start``, every field varied."""
    countries = [None, "DE", "US"]
    ips = [None, "10.1.2.3", "2001:db8::7"]
    devices = [None, "mobile", "tv", "desktop"]
    return [Click(f"{prefix}-{i}\t\\x", f"ad-{i % 5}", start + (i * 37) % HOUR + 0.25,
                  user_id=None if i % 4 == 0 else f"user-{i}", ip=ips[i % 3],
                  country=countries[i % 3], device=devices[i % 4],
                  campaign_id=None if i % 2 else f"camp\t{i % 5}",
                  advertiser_id=None if i % 3 else "adv\\1") for i in range(count)]


def _ledger(stack: Stack, parent: str) -> dict[int, tuple[Any, ...]]:
    rows = sql(stack, "SELECT extract(epoch FROM range_start)::bigint, partition_name, "
               "dropped_at, archive_file, archived_rows, archive_sha256, restored_at, "
               "to_regclass(partition_name) IS NOT NULL "
               "FROM raw.partitions WHERE parent = :p", p=parent)
    return {int(start): tuple(rest) for start, *rest in rows}


def _raw_rows_in(stack: Stack, start: int, end: int) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in sql(
        stack, f"SELECT {COLUMNS} FROM raw.ad_clicks WHERE minute >= :s AND minute < :e "
        "ORDER BY click_id", s=to_datetime(start), e=to_datetime(end))]


def _settings(stack: Stack, **changes: Any) -> Any:
    return stack.with_settings(**changes).settings


def test_the_maintenance_task_makes_the_partitions_ahead(stack: Stack,
                                                         celery_worker: Path) -> None:
    from farloom_tasks import tasks

    before = _now()
    report = tasks.maintain_partitions.delay().get(timeout=120)
    settings = stack.settings

    raw_ledger, minute_ledger = _ledger(stack, RAW), _ledger(stack, MINUTES)
    for ledger, hours in ((raw_ledger, settings.raw_partition_hours),
                          (minute_ledger, settings.minute_partition_hours)):
        wanted = wanted_ahead(before, hours * HOUR, settings.max_clock_skew_seconds,
                              settings.partition_premake_seconds)
        for start in wanted:
            assert start in ledger and ledger[start][1] is None and ledger[start][6], iso(start)
    # Now through 2 h 5 min ahead: the current hour and the two or three after it.
    assert report["made_ahead"][RAW] >= 3
    assert report["dropped"] == []


def test_making_ahead_then_importing_old_clicks_makes_their_partitions_on_demand(
        stack: Stack) -> None:
    future = _now() + 40 * DAY  # ranges no earlier test can have made
    engine = stack.engine()
    try:
        made = retention.make_ahead(engine, stack.settings, future)
    finally:
        engine.dispose()
    ledger = _ledger(stack, RAW)
    assert made[RAW] == len(wanted_ahead(future, HOUR, 300, 7200))
    assert all(s in ledger for s in wanted_ahead(future, HOUR, 300, 7200))

    old = start_of(_now() - 400 * DAY, HOUR)
    _store(stack, _clicks_in_hour(old, "old", 30))
    assert old in _ledger(stack, RAW)
    assert len(_raw_rows_in(stack, old, old + HOUR)) == 30


def _at_once(stack: Stack, work: Any, runs: int = 4) -> list[Any]:
    """``work(engine)`` in ``runs`` threads released together; their results."""
    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(runs)

    def run() -> None:
        engine = stack.engine()
        try:
            barrier.wait()
            results.append(work(engine))
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=run) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(results) == runs
    return results


def test_two_maintenance_runs_at_once_make_each_partition_once_and_drop_once(
        stack: Stack) -> None:
    now = _now()
    expired_start = start_of(now - 6 * DAY, HOUR)
    _store(stack, _clicks_in_hour(expired_start, "gone", 20))
    future = now + 50 * DAY  # ranges nothing has made yet
    settings = _settings(stack, raw_retention_days=2)

    _at_once(stack, lambda engine: retention.make_ahead(engine, settings, future))
    reports = _at_once(stack, lambda engine: retention.maintain(engine, settings, now))

    dropped = Counter(name for report in reports for name in report.dropped)
    assert list(dropped.values()) == [1] * len(dropped) and len(dropped) >= 1, dropped
    ledger = _ledger(stack, RAW)
    assert ledger[expired_start][0] in dropped
    assert ledger[expired_start][1] is not None and not ledger[expired_start][6]
    # One partition per range made ahead, each attached once.
    for start in wanted_ahead(future, HOUR, 300, 7200) + wanted_ahead(now, HOUR, 300, 7200):
        assert ledger[start][1] is None and ledger[start][6]
    attached = sql(stack, "SELECT count(*), count(DISTINCT c.relname) FROM pg_inherits i "
                   "JOIN pg_class c ON c.oid = i.inhrelid "
                   "WHERE i.inhparent = 'raw.ad_clicks'::regclass")[0]
    assert attached[0] == attached[1] == sum(1 for e in ledger.values() if e[1] is None)


def test_raw_retention_drops_only_whole_expired_partitions(stack: Stack) -> None:
    now = _now()
    horizon = now - 2 * DAY
    long_ago = start_of(now - 5 * DAY, HOUR)
    ends_before_horizon = start_of(horizon, HOUR) - HOUR
    straddling = start_of(horizon, HOUR)
    recent = start_of(now - DAY, HOUR)
    for start, prefix in ((long_ago, "a"), (ends_before_horizon, "b"), (straddling, "c"),
                          (recent, "d")):
        _store(stack, _clicks_in_hour(start, prefix, 25))
    kept_before = {s: _raw_rows_in(stack, s, s + HOUR) for s in (straddling, recent)}

    engine = stack.engine()
    try:
        report = retention.maintain(engine, _settings(stack, raw_retention_days=2), now)
    finally:
        engine.dispose()

    ledger = _ledger(stack, RAW)
    for start in (long_ago, ends_before_horizon):
        name, dropped_at, archive_file, *_, exists = ledger[start]
        assert dropped_at is not None and archive_file is None and not exists
        assert name in report.dropped
        assert _raw_rows_in(stack, start, start + HOUR) == []
    for start, rows in kept_before.items():
        assert ledger[start][1] is None and ledger[start][6]
        assert _raw_rows_in(stack, start, start + HOUR) == rows
    # Whole partitions only: the straddling one keeps its clicks older than the horizon.
    assert any(r[2].timestamp() < horizon for r in kept_before[straddling])
    assert report.archived == []


def test_an_archived_partition_restores_exactly_and_is_not_dropped_again(
        stack: Stack, tmp_path: Path) -> None:
    now = _now()
    start = start_of(now - 4 * DAY, HOUR)
    _store(stack, _clicks_in_hour(start, "arch", 300))
    before = _raw_rows_in(stack, start, start + HOUR)
    assert len(before) == 300
    archive_dir = tmp_path / "archive"
    settings = _settings(stack, raw_retention_days=2, archive_dir=str(archive_dir))

    engine = stack.engine()
    try:
        report = retention.maintain(engine, settings, now)
    finally:
        engine.dispose()

    manifest_path = archive.manifest_path_for(archive_dir, RAW, start, start + HOUR)
    assert str(manifest_path) in report.archived
    # Earlier tests in this session leave old partitions behind, emptied by the reset:
    # retention archives and drops those too, each with no rows.
    assert all(archive.read_manifest(Path(other))[0].rows == 0
               for other in report.archived if other != str(manifest_path))
    manifest, data_path = archive.read_manifest(manifest_path)
    assert (manifest.table, manifest.range_start, manifest.range_end, manifest.rows) == (
        RAW, start, start + HOUR, 300)
    archive.verify_checksum(manifest, data_path)
    doc = json.loads(manifest_path.read_text())
    assert doc["columns"][:4] == ["click_id", "ad_id", "clicked_at", "minute"]
    _, dropped_at, archive_file, archived_rows, sha, _, exists = _ledger(stack, RAW)[start]
    assert (archive_file, archived_rows, sha) == (str(manifest_path), 300, manifest.sha256)
    assert dropped_at is not None and not exists
    assert _raw_rows_in(stack, start, start + HOUR) == []
    assert not list(archive_dir.glob("*.tmp"))

    # A damaged copy is refused before anything changes.
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / manifest_path.name).write_bytes(manifest_path.read_bytes())
    blob = bytearray(data_path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (damaged / data_path.name).write_bytes(bytes(blob))
    refused = stack.farloom("archive", "restore", str(damaged / manifest_path.name))
    assert refused.returncode == 3 and "checksum mismatch" in refused.stderr, refused.stderr
    assert _ledger(stack, RAW)[start][1] is not None  # still dropped
    missing = stack.farloom("archive", "restore", str(tmp_path / "nothing.manifest.json"))
    assert missing.returncode == 3 and "no archive manifest" in missing.stderr

    done = stack.farloom("archive", "restore", str(data_path))  # the data file works too

    assert done.returncode == 0, done.stderr[-2000:]
    assert "farloom replay" in done.stdout and "--source raw" in done.stdout
    assert _raw_rows_in(stack, start, start + HOUR) == before  # every column of every row
    _, dropped_at, _, _, _, restored_at, exists = _ledger(stack, RAW)[start]
    assert dropped_at is None and restored_at is not None and exists
    again = stack.farloom("archive", "restore", str(manifest_path))
    assert again.returncode == 3 and "already holds 300 rows" in again.stderr
    listed = stack.farloom("archive", "list")
    assert listed.returncode == 0 and "restored" in listed.stdout

    engine = stack.engine()
    try:
        later = retention.maintain(engine, settings, now + HOUR)
    finally:
        engine.dispose()
    assert _ledger(stack, RAW)[start][0] not in later.dropped
    assert _raw_rows_in(stack, start, start + HOUR) == before


def test_an_archive_written_before_migration_0010_restores_with_the_new_columns_null(
        stack: Stack, tmp_path: Path) -> None:
    now = _now()
    # An hour no other test restores (a restored partition is never dropped again).
    start = start_of(now - 7 * DAY - 5 * HOUR, HOUR)
    _store(stack, _clicks_in_hour(start, "old", 40))
    before = _raw_rows_in(stack, start, start + HOUR)
    archive_dir = tmp_path / "archive"
    engine = stack.engine()
    try:
        retention.maintain(engine, _settings(stack, raw_retention_days=2,
                                             archive_dir=str(archive_dir)), now)
    finally:
        engine.dispose()
    manifest_path = archive.manifest_path_for(archive_dir, RAW, start, start + HOUR)
    # Rewrite it as 0009 wrote it: the same COPY text without the columns 0010 added.
    rewrite_without(manifest_path, OWNER_COLUMNS)

    done = stack.farloom("archive", "restore", str(manifest_path))

    assert done.returncode == 0, done.stderr[-2000:]
    after = _raw_rows_in(stack, start, start + HOUR)
    width = len(OWNER_COLUMNS)
    assert [row[:-width] for row in after] == [row[:-width] for row in before]
    assert {row[-width:] for row in after} == {(None,) * width}


def test_a_click_beyond_retention_is_dead_lettered_and_its_batch_mates_stored(
        stack: Stack) -> None:
    now = _now()
    old = {"click_id": "too-old", "ad_id": "a", "clicked_at": now - 3 * DAY}
    old_text = {"click_id": "too-old-text", "ad_id": "a", "ip": "10.0.0.1",
                "clicked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 5 * DAY))}
    fresh = [{"click_id": f"fresh-{i}", "ad_id": "a", "clicked_at": now - 30 - i}
             for i in range(5)]
    publish(stack, [json.dumps([fresh[0], old, fresh[1]]).encode(),
                    json.dumps(old_text).encode(), json.dumps(fresh[2:]).encode()])

    summary = run_burst(stack, raw_retention_days=2)

    letters = dead_letters(stack)
    got = {json.loads(body)["click_id"]: (h[topology.REASON_CODE_HEADER],
                                          h.get(topology.ELEMENT_INDEX_HEADER))
           for body, h in letters}
    assert got == {"too-old": ("beyond_retention", 1),
                   "too-old-text": ("beyond_retention", None)}
    assert all("older than raw retention" in h[topology.REASON_HEADER] for _, h in letters)
    stored = {r[0] for r in sql(stack, "SELECT click_id FROM raw.ad_clicks")}
    assert stored == {c["click_id"] for c in fresh}
    assert summary["clicks_stored"] == 5 and summary["dead_letters"] == 2
    assert queue_counts(stack) == (0, 0)


def test_a_click_of_a_dropped_partition_is_dead_lettered_beyond_retention(
        stack: Stack) -> None:
    # Validation with retention 0 accepts it: only the write finds the partition gone.
    now = _now()
    start = start_of(now - 10 * DAY, HOUR)
    _store(stack, _clicks_in_hour(start, "was", 3))
    engine = stack.engine()
    try:
        retention.drop_partition(engine, RAW, start, None)
    finally:
        engine.dispose()
    late = {"click_id": "into-dropped", "ad_id": "b", "clicked_at": start + 100}
    mates = [{"click_id": f"mate-{i}", "ad_id": "b", "clicked_at": now - 20 - i}
             for i in range(3)]
    publish(stack, [json.dumps([mates[0], late, mates[1], mates[2]]).encode()])

    summary = run_burst(stack)

    letters = dead_letters(stack)
    assert [(h[topology.REASON_CODE_HEADER], json.loads(body)["click_id"])
            for body, h in letters] == [("beyond_retention", "into-dropped")]
    assert "dropped by retention" in letters[0][1][topology.REASON_HEADER]
    assert {r[0] for r in sql(stack, "SELECT click_id FROM raw.ad_clicks")} == {
        m["click_id"] for m in mates}
    assert summary["clicks_stored"] == 3
    assert queue_counts(stack) == (0, 0)


def test_replay_and_reconcile_of_a_dropped_minute_say_so_and_publish_nothing(
        stack: Stack, tmp_path: Path) -> None:
    now = _now()
    start = start_of(now - 3 * DAY, HOUR)
    _store(stack, _clicks_in_hour(start, "r", 40))
    minute = start + 10 * MINUTE
    sql(stack, "UPDATE agg.watermark SET closed_through = :m", m=to_datetime(
        start_of(now, MINUTE) - 5 * MINUTE))
    engine = stack.engine()
    try:
        retention.maintain(engine, _settings(stack, raw_retention_days=2,
                                             archive_dir=str(tmp_path)), now)
        dropped = _ledger(stack, RAW)[start]
        assert dropped[1] is not None

        out = stack.farloom("replay", iso(minute), "--source", "raw")
        assert out.returncode == 3, out.stderr
        assert "dropped by raw retention at" in out.stderr
        assert str(dropped[2]) in out.stderr and "farloom archive restore" in out.stderr
        assert "queued" not in out.stdout

        rec = stack.farloom("reconcile", iso(start), iso(start + HOUR - MINUTE))
        assert rec.returncode == 3 and "cannot reconcile" in rec.stderr, rec.stderr

        # The task's path (replay_minute / replay_minutes) refuses before claiming.
        raw_store = RawStore(engine, stack.settings.shard_count, HOUR)
        counts = stack.counts()
        try:
            with pytest.raises(MinutesDropped, match="dropped by raw retention"):
                replay.prepare(engine, raw_store, counts, minute=minute, source="auto",
                               shard_count=stack.settings.shard_count, now=now,
                               max_clock_skew_seconds=300, grace_seconds=5.0)
        finally:
            raw_store.close()
    finally:
        engine.dispose()
    # Nothing was claimed. (The replay did close the minutes past their deadline since the
    # watermark, as beat would: their rows exist, with no attempt started.)
    assert sql(stack, "SELECT count(*) FROM agg.minute_closes "
               "WHERE started_revision IS NOT NULL OR minute = :m",
               m=to_datetime(minute))[0][0] == 0
    assert sql(stack, "SELECT count(*) FROM agg.reconciliation_runs")[0][0] == 0
    assert queue_counts(stack, topology.AGGREGATES_QUEUE) == (0, 0)
    # Making the partition again for a write is refused too.
    with transaction(stack.engine()) as cursor, pytest.raises(partitions.PartitionDropped):
        partitions.ensure(cursor, partitions.RAW, minute, HOUR)


def _fill_minutes(stack: Stack, day_start: int, minutes: int, ads: int) -> None:
    """Per-minute rows, totals, top ads and the rollups of ``minutes`` minutes of a day."""
    with transaction(stack.engine()) as cursor:
        partitions.ensure(cursor, partitions.MINUTES, day_start, DAY)
    sql(stack, """
        INSERT INTO agg.ad_clicks_per_minute (minute, ad_id, clicks, revision)
        SELECT :d + make_interval(mins => m), 'ad-' || a, m + a + 1, 1
        FROM generate_series(0, :n - 1) m, generate_series(0, :a - 1) a
    """, d=to_datetime(day_start), n=minutes, a=ads)
    for statement in (
            "INSERT INTO agg.minute_totals SELECT minute, sum(clicks), count(*), 1, now() "
            "FROM agg.ad_clicks_per_minute WHERE minute >= :d AND minute < :e GROUP BY 1",
            "INSERT INTO agg.top_ads SELECT minute, row_number() OVER (PARTITION BY minute "
            "ORDER BY clicks DESC, ad_id), ad_id, clicks, 1 FROM agg.ad_clicks_per_minute "
            "WHERE minute >= :d AND minute < :e",
            "INSERT INTO agg.ad_clicks_per_hour SELECT date_trunc('hour', minute), ad_id, "
            "sum(clicks) FROM agg.ad_clicks_per_minute WHERE minute >= :d AND minute < :e "
            "GROUP BY 1, 2",
            "INSERT INTO agg.ad_clicks_per_day SELECT date_trunc('day', minute), ad_id, "
            "sum(clicks) FROM agg.ad_clicks_per_minute WHERE minute >= :d AND minute < :e "
            "GROUP BY 1, 2",
            "INSERT INTO agg.hour_totals SELECT date_trunc('hour', minute), sum(clicks) "
            "FROM agg.ad_clicks_per_minute WHERE minute >= :d AND minute < :e GROUP BY 1",
            "INSERT INTO agg.day_totals SELECT date_trunc('day', minute), sum(clicks) "
            "FROM agg.ad_clicks_per_minute WHERE minute >= :d AND minute < :e GROUP BY 1"):
        sql(stack, statement, d=to_datetime(day_start), e=to_datetime(day_start + DAY))


def _rollups(stack: Stack) -> dict[str, list[tuple[Any, ...]]]:
    return {table: sorted(tuple(r) for r in sql(stack, f"SELECT * FROM agg.{table}"))
            for table in ("ad_clicks_per_hour", "ad_clicks_per_day", "hour_totals",
                          "day_totals")}


def _count(stack: Stack, table: str, where: str = "true", **params: Any) -> int:
    return int(sql(stack, f"SELECT count(*) FROM {table} WHERE {where}", **params)[0][0])


def test_minute_retention_drops_whole_partitions_keeps_rollups_and_trims_bookkeeping(
        stack: Stack) -> None:
    now = _now()
    old_day = start_of(now - 6 * DAY, DAY)
    kept_day = start_of(now - DAY, DAY)
    _fill_minutes(stack, old_day, 90, 7)
    _fill_minutes(stack, kept_day, 90, 7)
    rollups = _rollups(stack)
    assert rollups["day_totals"]
    old, kept = to_datetime(old_day + 600), to_datetime(kept_day + 600)
    for when in (old, kept):
        sql(stack, "INSERT INTO agg.minute_closes (minute, attempts, published_revision) "
            "VALUES (:m, 1, 1)", m=when)
        sql(stack, "INSERT INTO agg.minute_parts (minute, revision, part, parts) "
            "VALUES (:m, 1, 0, 2)", m=when)
        sql(stack, "INSERT INTO agg.late_minutes (minute, late_clicks) VALUES (:m, 1)", m=when)
        run = sql(stack, "INSERT INTO agg.reconciliation_runs (trigger, range_start, range_end) "
                  "VALUES ('test', :m, :m) RETURNING run_id", m=when)[0][0]
        sql(stack, "INSERT INTO agg.reconciliation_findings (run_id, minute, raw_clicks, "
            "raw_distinct_ads, differing_ads) VALUES (:r, :m, 1, 1, 0)", r=run, m=when)
        for repaired in (True, False):
            sql(stack, "INSERT INTO agg.redis_losses (old_epoch, new_epoch, window_start, "
                "window_end, repaired_at) VALUES ('a', 'b', :m, :m, "
                + ("now()" if repaired else "NULL") + ")", m=when)
    # Outbox rows follow raw retention: one of raw's old clicks and one of now.
    _store(stack, _clicks_in_hour(start_of(now - 5 * DAY, HOUR), "ob", 3))
    _store(stack, [Click("ob-now", "a", now - 60)])
    assert _count(stack, "raw.redis_outbox") == 2

    engine = stack.engine()
    try:
        report = retention.maintain(
            engine, _settings(stack, minute_retention_days=3, raw_retention_days=4), now)
    finally:
        engine.dispose()

    ledger = _ledger(stack, MINUTES)
    assert ledger[old_day][1] is not None and not ledger[old_day][6]
    assert ledger[kept_day][1] is None and ledger[kept_day][6]
    assert ledger[old_day][0] in report.dropped
    in_old = "minute >= :d AND minute < :e"
    span = {"d": to_datetime(old_day), "e": to_datetime(old_day + DAY)}
    assert _count(stack, "agg.ad_clicks_per_minute", in_old, **span) == 0
    assert _count(stack, "agg.ad_clicks_per_minute") == 90 * 7
    assert _rollups(stack) == rollups  # hour and day rollups outlive their minutes
    for table in ("agg.minute_totals", "agg.top_ads"):
        assert _count(stack, table, in_old, **span) == 0
        assert _count(stack, table) == 90 * (1 if table == "agg.minute_totals" else 7)
    for table in ("agg.minute_closes", "agg.minute_parts", "agg.late_minutes"):
        assert [r[0] for r in sql(stack, f"SELECT minute FROM {table}")] == [kept], table
    assert [r[0] for r in sql(stack, "SELECT range_end FROM agg.reconciliation_runs")] == [kept]
    assert [r[0] for r in sql(stack, "SELECT minute FROM agg.reconciliation_findings")] == [
        kept]
    # The unrepaired loss stays whatever its age.
    assert sorted((r[0], r[1] is not None) for r in sql(
        stack, "SELECT window_end, repaired_at FROM agg.redis_losses")) == sorted(
        [(old, False), (kept, False), (kept, True)])
    outbox = sql(stack, "SELECT max_minute FROM raw.redis_outbox")
    assert [r[0].timestamp() for r in outbox] == [start_of(now - 60, MINUTE)]
    assert report.trimmed["agg.top_ads"] == 90 * 7
    assert report.trimmed["raw.redis_outbox"] == 1
