"""The PostgreSQL + Redis write path on its own, against the real services."""

from __future__ import annotations

import time
from collections import Counter

import sqlalchemy as sa

from farloom_tasks.core.clicks import Click
from farloom_tasks.core.shards import shard_of
from farloom_tasks.core.windows import minute_of
from farloom_tasks.pipeline.durable_write import DurableWriter, drain_outbox
from farloom_tasks.stores import redis_counts
from farloom_tasks.stores.raw import RawStore
from tests.support.redis_cluster import on_single_redis_and_cluster
from tests.support.stack import Stack

pytestmark = on_single_redis_and_cluster


def _writer(stack: Stack) -> tuple[DurableWriter, RawStore, redis_counts.RedisCounts]:
    raw = RawStore(stack.engine(), stack.settings.shard_count)
    counts = stack.counts()
    return DurableWriter(raw, counts), raw, counts


def _redis_counts(counts: redis_counts.RedisCounts, minutes: set[int],
                  shard_count: int) -> Counter[tuple[int, str]]:
    seen: Counter[tuple[int, str]] = Counter()
    for minute in minutes:
        for shard in range(shard_count):
            for ad_id, clicks in counts.shard_counts(shard, minute):
                assert shard_of(ad_id, shard_count) == shard
                seen[(minute, ad_id)] += clicks
    return seen


def test_a_batch_written_twice_is_stored_and_counted_once(stack: Stack) -> None:
    writer, _, counts = _writer(stack)
    now = time.time()
    clicks = [Click(f"c{i}", f"ad{i % 37}", now - 130 + i * 0.05) for i in range(3000)]

    first = writer.write(clicks)
    second = writer.write(clicks)

    assert (first.new_clicks, first.duplicates) == (3000, 0)
    assert (second.new_clicks, second.duplicates) == (0, 3000)
    expected = Counter((minute_of(c.clicked_at), c.ad_id) for c in clicks)
    minutes = {m for m, _ in expected}
    assert _redis_counts(counts, minutes, stack.settings.shard_count) == expected
    with stack.engine().connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM raw.ad_clicks")).scalar() == 3000


def test_an_outbox_row_left_by_a_crash_is_applied_once_by_the_drain(stack: Stack) -> None:
    _, raw, counts = _writer(stack)
    now = time.time()
    clicks = [Click(f"k{i}", f"ad{i % 5}", now - 30) for i in range(100)]
    # The commit happened, then the worker died before touching Redis.
    committed = raw.commit_batch(clicks)

    assert drain_outbox(raw, counts) == 1
    counts.apply_batch(committed.batch_id, committed.increments)  # the worker's late retry
    assert drain_outbox(raw, counts) == 0

    minute = minute_of(now - 30)
    total = sum(counts.shard_total(s, minute) for s in range(stack.settings.shard_count))
    assert total == 100


def test_ids_full_of_quotes_backslashes_and_unicode_are_stored_verbatim(stack: Stack) -> None:
    writer, _, _ = _writer(stack)
    now = time.time()
    odd = ["'); DROP TABLE raw.ad_clicks; --", 'say "hi"', "back\\slash", "{a,b}", "NULL",
           "tab\there", "ünïcødé", "😀 emoji", "$(rm -rf /)", "a" * 64]
    clicks = [Click(f"odd-{text}", text, now - 10, text, None, None) for text in odd]

    assert writer.write(clicks).new_clicks == len(odd)

    with stack.engine().connect() as conn:
        rows = conn.execute(sa.text("SELECT click_id, ad_id, user_id FROM raw.ad_clicks"))
        assert sorted(tuple(row) for row in rows) == sorted(
            (f"odd-{text}", text, text) for text in odd)
