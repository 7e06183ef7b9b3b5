"""Redis loses its data between two ticks: the next tick sees which shards lost it, raw
rebuilds those shards' minutes, the other shards are not touched."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from farloom_tasks.core.clicks import Click
from farloom_tasks.core.shards import shard_of
from farloom_tasks.core.windows import MINUTE, last_due_minute, minute_of
from farloom_tasks.pipeline import redis_loss
from farloom_tasks.pipeline.durable_write import drain_outbox
from farloom_tasks.stores import db, redis_counts, redis_epochs
from farloom_tasks.stores import migrations as migrate
from tests.support.database import sql
from tests.support.minute_checks import (
    assert_agg_is,
    clicks_for,
    closes,
    counted,
    durable_writer,
    set_watermark,
    wait_published,
    write_aggregates,
)
from tests.support.redis_cluster import on_single_redis_and_cluster
from tests.support.stack import Stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("celery_worker")


def _tick() -> list[dict[str, int | None]]:
    from farloom_tasks import tasks

    result: list[dict[str, int | None]] = tasks.close_due_minutes.delay().get(timeout=60)
    return result


def _redis_minute(stack: Stack, minute: int,
                  shards: list[int] | None = None) -> Counter[tuple[int, str]]:
    client = stack.redis()
    found: Counter[tuple[int, str]] = Counter()
    for shard in range(stack.settings.shard_count) if shards is None else shards:
        members: Any = client.zrange(redis_counts.clicks_key(shard, minute), 0, -1,
                                     withscores=True)
        for ad, n in members:
            found[(minute, bytes(ad).decode())] += int(n)
    return found


def _on(shards: set[int], clicks: list[Click], shard_count: int) -> list[Click]:
    return [c for c in clicks if shard_of(c.ad_id, shard_count) in shards]


def _ads_on_every_shard(shard_count: int, per_shard: int) -> list[str]:
    """Ad ids, ``per_shard`` of them on each shard (core/shards.py decides where)."""
    chosen: dict[int, list[str]] = {shard: [] for shard in range(shard_count)}
    n = 0
    while any(len(ads) < per_shard for ads in chosen.values()):
        ad = f"ad-{n}"
        n += 1
        if len(chosen[shard_of(ad, shard_count)]) < per_shard:
            chosen[shard_of(ad, shard_count)].append(ad)
    return [ad for ads in chosen.values() for ad in ads]


def _lose_shard(stack: Stack, shard: int) -> int:
    """Delete every key of ``shard`` (sets, totals, applied markers, its epoch): what a
    shard whose master lost its data looks like. Returns how many keys went."""
    client = stack.redis()
    keys = list(client.scan_iter(match=f"{redis_counts.KEY_PREFIX}:{{shard-{shard}}}:*"))
    assert redis_epochs.epoch_key(shard).encode() in keys
    return int(client.delete(*keys))


@on_single_redis_and_cluster
def test_a_flushed_redis_is_detected_and_every_affected_minute_is_exact_again(
        stack: Stack, tmp_path: Path) -> None:
    closed = last_due_minute(time.time(), 5.0) - MINUTE
    open_minute = minute_of(time.time()) + 2 * MINUTE  # valid: within the clock skew
    set_watermark(stack, closed - MINUTE)
    writer, _ = durable_writer(stack)
    before = clicks_for(closed, "b", {"a": 6, "b": 4, "c": 1})
    early = clicks_for(open_minute, "o", {"a": 3, "d": 2})
    writer.write(before + early)
    state = wait_published(stack, [closed], tick=_tick)
    write_aggregates(stack)
    assert_agg_is(stack, counted(before), [closed])
    assert sql(stack, "SELECT count(*) FROM agg.redis_losses")[0][0] == 0  # first run: no loss

    stack.redis().flushdb()
    # Written after the loss: they land on empty keys, so Redis alone would be partial.
    late = clicks_for(closed, "l", {"b": 2, "e": 1})
    more = clicks_for(open_minute, "m", {"d": 1})
    writer.write(late + more)

    assert _tick() == []  # the detecting tick claims nothing
    losses = wait_for("the loss to be repaired", lambda: sql(
        stack, "SELECT minutes_rebuilt, minutes_reaggregated FROM agg.redis_losses "
        "WHERE repaired_at IS NOT NULL"))
    assert [tuple(r) for r in losses] == [(2, 1)]  # both minutes rebuilt; the closed one again
    assert _redis_minute(stack, open_minute) == counted(early + more)
    shown = stack.farloom("status", "--json", "--no-celery", "--state",
                          str(tmp_path / "status.json"))
    status = json.loads(shown.stdout)
    assert status["redis_losses"] == 1, shown.stderr
    assert status["redis_last_loss_shards"] == list(range(stack.settings.shard_count))

    wait_published(stack, [closed], after=state[closed][2] or 0, tick=_tick)
    write_aggregates(stack)
    assert_agg_is(stack, counted(before + late), [closed])
    assert closes(stack, [closed])[closed][0] >= 2
    assert sql(stack, "SELECT count(*) FROM agg.redis_losses")[0][0] == 1  # recorded once


LOST = 3


@on_single_redis_and_cluster
def test_a_loss_of_one_shard_rebuilds_only_that_shards_minutes_and_counts_stay_exact(
        stack: Stack, tmp_path: Path) -> None:
    shards = stack.settings.shard_count
    kept = [shard for shard in range(shards) if shard != LOST]
    closed = last_due_minute(time.time(), 5.0) - MINUTE
    open_minute = minute_of(time.time()) + 2 * MINUTE  # valid: within the clock skew
    set_watermark(stack, closed - MINUTE)
    writer, raw = durable_writer(stack)
    ads = _ads_on_every_shard(shards, 3)
    before = clicks_for(closed, "b", {ad: 1 + i % 5 for i, ad in enumerate(ads)})
    early = clicks_for(open_minute, "o", {ad: 1 + i % 3 for i, ad in enumerate(ads)})
    writer.write(before + early)
    state = wait_published(stack, [closed], tick=_tick)
    write_aggregates(stack)
    assert_agg_is(stack, counted(before), [closed])
    # A batch applied to Redis whose outbox row is still there (the writer deletes it
    # with its next batch): drained again after the loss, it must not count twice.
    pending = clicks_for(open_minute, "p", {ad: 2 for ad in ads})
    writer.write(pending)
    assert sql(stack, "SELECT count(*) FROM raw.redis_outbox")[0][0] == 1
    # A member raw does not have, on every shard that keeps its data: a shard rebuilt
    # from raw would lose it, so it shows which shards the repair left alone.
    client = stack.redis()
    for shard in kept:
        client.zadd(redis_counts.clicks_key(shard, open_minute), {f"phantom-{shard}": 1000})
    kept_before = _redis_minute(stack, open_minute, kept)

    assert _lose_shard(stack, LOST) > 0
    counts = redis_counts.RedisCounts(client, stack.settings.redis_retention_seconds)
    assert drain_outbox(raw, counts) == 1  # the row again: only the lost shard applies it
    assert _redis_minute(stack, open_minute, kept) == kept_before
    # Written after the loss, on every shard.
    late = clicks_for(closed, "l", {ad: 1 for ad in ads[::2]})
    more = clicks_for(open_minute, "m", {ad: 1 for ad in ads[1::2]})
    writer.write(late + more)

    assert _tick() == []  # the detecting tick claims nothing
    losses = wait_for("the loss to be repaired", lambda: sql(
        stack, "SELECT loss_id, minutes_rebuilt, minutes_reaggregated FROM agg.redis_losses "
        "WHERE repaired_at IS NOT NULL"))
    assert [tuple(r[1:]) for r in losses] == [(2, 1)]  # both minutes; the closed one again
    # The loss names shard 3 alone, with the minutes it had clicks in.
    assert [tuple(r) for r in sql(stack, "SELECT shard, minutes_rebuilt FROM "
                                  "agg.redis_loss_shards WHERE loss_id = :l",
                                  l=losses[0][0])] == [(LOST, 2)]
    # Shard 3 is raw's again; every other shard kept even its phantom: not rebuilt.
    assert _redis_minute(stack, open_minute, [LOST]) == counted(
        _on({LOST}, early + pending + more, shards))
    phantoms = Counter({(open_minute, f"phantom-{shard}"): 1000 for shard in kept})
    assert _redis_minute(stack, open_minute, kept) == counted(
        _on(set(kept), early + pending + more, shards)) + phantoms
    shown = stack.farloom("status", "--json", "--no-celery", "--state",
                          str(tmp_path / "status.json"))
    status = json.loads(shown.stdout)
    assert status["redis_losses"] == 1, shown.stderr
    assert status["redis_last_loss_shards"] == [LOST]

    wait_published(stack, [closed], after=state[closed][2] or 0, tick=_tick)
    write_aggregates(stack)
    assert_agg_is(stack, counted(before + late), [closed])
    assert sql(stack, "SELECT count(*) FROM agg.redis_losses")[0][0] == 1  # recorded once


def test_going_back_before_per_shard_epochs_keeps_each_losses_epochs_as_text(
        stack: Stack) -> None:
    url = sa.make_url(stack.settings.database_url).set(
        database=f"farloom_epochs_{stack.run_id}").render_as_string(hide_password=False)
    engine = db.make_engine(url, pool_size=1)
    try:
        migrate.upgrade(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO agg.redis_losses (loss_id, window_start, window_end) "
                "VALUES (7, now(), now())")
            conn.exec_driver_sql(
                "INSERT INTO agg.redis_loss_shards (loss_id, shard, old_epoch, new_epoch) "
                "VALUES (7, 5, 'a5', 'b5'), (7, 2, 'a2', 'b2')")
        migrate.downgrade(url, "0008")
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT loss_id, old_epoch, new_epoch FROM agg.redis_losses").all()
        assert [tuple(r) for r in rows] == [(7, "2=a2,5=a5", "2=b2,5=b5")]
        migrate.upgrade(url)  # and forward again: the old loss keeps its text epochs
    finally:
        engine.dispose()
        db.drop_database(url)


def test_ticks_racing_after_a_partial_loss_record_it_once_and_lease_its_repair_once(
        stack: Stack) -> None:
    shards = stack.settings.shard_count
    engine = db.make_engine(stack.settings.database_url, pool_size=6)
    counts = stack.counts()

    def check() -> redis_loss.TickCheck:
        return redis_loss.check(engine, counts, shard_count=shards, now=time.time(),
                                retention_seconds=stack.settings.redis_retention_seconds,
                                max_clock_skew_seconds=300.0, lease_seconds=60.0)

    try:
        assert check() == redis_loss.TickCheck(repair_pending=False)  # first run: no loss
        stack.redis().delete(redis_epochs.epoch_key(3), redis_epochs.epoch_key(6))
        start = threading.Barrier(6)
        results: list[redis_loss.TickCheck] = []

        def tick() -> None:
            start.wait()
            results.append(check())

        threads = [threading.Thread(target=tick) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        engine.dispose()
    assert len(results) == 6 and all(r.repair_pending for r in results)
    losses = sql(stack, "SELECT loss_id FROM agg.redis_losses")
    assert len(losses) == 1
    assert sorted(r for result in results for r in result.start_repair) == [losses[0][0]]
    assert [tuple(r) for r in sql(stack, "SELECT shard FROM agg.redis_loss_shards "
                                  "ORDER BY shard")] == [(3,), (6,)]
