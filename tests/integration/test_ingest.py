"""The ingest worker as a subprocess against the real services: exact rows and counts,
dead letters with reasons, late clicks, key expiry, unstorable clicks, the burst summary."""

from __future__ import annotations

import json
import random
import time
from collections import Counter

import sqlalchemy as sa

from farloom_tasks.core.windows import MINUTE, minute_of
from farloom_tasks.stores import redis_counts, redis_epochs, topology
from tests.integration.ingest_support import (
    assert_exact,
    mixed_stream,
    one_click_stream,
    postgresql_refusing,
    run_burst,
    valid_click,
)
from tests.support.broker import dead_letters, publish, queue_counts
from tests.support.database import pending_outbox, sql
from tests.support.redis_cluster import on_single_redis_and_cluster
from tests.support.redis_view import redis_minute_counts
from tests.support.stack import Stack


@on_single_redis_and_cluster
def test_duplicates_and_invalid_elements_leave_exact_rows_and_counts(stack: Stack) -> None:
    now = time.time()
    stream = mixed_stream(7, 1500, now, invalid_share=0.1, duplicate_share=0.25)
    publish(stack, stream.bodies)

    summary = run_burst(stack, batch_size=97)

    assert_exact(stack, stream)
    assert queue_counts(stack) == (0, 0)
    assert pending_outbox(stack) == 0  # applied rows are deleted once the worker is idle
    assert summary["messages"] == len(stream.bodies)
    assert summary["clicks_stored"] == len(stream.click_ids)
    assert summary["dead_letters"] == len(stream.invalid)
    assert summary["clicks_received"] == summary["clicks_stored"] + summary["duplicates"]
    assert summary["duplicates"] > 0
    assert 0 < summary["latency_p50_s"] <= summary["latency_p99_s"]
    assert summary["peak_rss_mb"] > 0


def test_every_invalid_element_is_dead_lettered_with_its_reason(stack: Stack) -> None:
    now = time.time()
    stream = mixed_stream(11, 200, now, invalid_share=0.3)
    whole = [
        (b'{"click_id": "x", "ad_id": "\xff\xfe", "clicked_at": 1}', "not_utf8"),
        (b'{"click_id": "x", ', "invalid_json"),
        (b"[" + b" " * 1_100_000 + b"]", "oversized"),
    ]
    publish(stack, stream.bodies + [body for body, _ in whole])

    run_burst(stack, batch_size=50)

    letters = dead_letters(stack)
    got = Counter((h[topology.REASON_CODE_HEADER], h.get(topology.ELEMENT_INDEX_HEADER))
                  for _, h in letters)
    assert got == Counter(stream.invalid + [(code, None) for _, code in whole])
    for _body, headers in letters:
        assert headers[topology.REASON_HEADER]
        assert headers[topology.SOURCE_QUEUE_HEADER] == topology.INGEST_QUEUE
    by_code = {h[topology.REASON_CODE_HEADER]: body for body, h in letters}
    assert by_code["oversized"] == whole[2][0]
    assert json.loads(by_code["future_timestamp"])["click_id"] == "future"
    assert_exact(stack, stream)  # the valid siblings were stored all the same


def test_a_late_click_is_stored_counted_and_its_minute_marked_late(stack: Stack) -> None:
    now = time.time()
    closed = minute_of(now) - 3 * MINUTE
    engine = stack.engine()
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE agg.watermark SET closed_through = to_timestamp(:m)"),
                     {"m": closed})
    late = [{"click_id": f"late-{i}", "ad_id": "ad-late", "clicked_at": closed + 1 + i}
            for i in range(3)]
    older = {"click_id": "older", "ad_id": "ad-late", "clicked_at": closed - 2 * MINUTE + 5}
    on_time = {"click_id": "fresh", "ad_id": "ad-late", "clicked_at": now - 1}
    publish(stack, [json.dumps(late).encode(), json.dumps(older).encode(),
                    json.dumps(on_time).encode()])

    summary = run_burst(stack)

    expected = Counter({(closed, "ad-late"): 3, (closed - 2 * MINUTE, "ad-late"): 1,
                        (minute_of(now - 1), "ad-late"): 1})
    assert redis_minute_counts(stack) == expected
    with engine.connect() as conn:
        marks = conn.execute(sa.text(
            "SELECT extract(epoch FROM minute)::bigint, late_clicks FROM agg.late_minutes"
        )).all()
        stored = conn.execute(sa.text("SELECT count(*) FROM raw.ad_clicks")).scalar_one()
    engine.dispose()
    assert sorted((int(m), int(n)) for m, n in marks) == [(closed - 2 * MINUTE, 1), (closed, 3)]
    assert stored == 5
    assert summary["late_clicks"] == 4


@on_single_redis_and_cluster
def test_every_redis_key_the_worker_writes_expires_after_the_retention(stack: Stack) -> None:
    stream = one_click_stream(50, time.time())
    publish(stack, stream.bodies)

    run_burst(stack, redis_retention_seconds=3600)

    client = stack.redis()
    keys = list(client.scan_iter(match=f"{redis_counts.KEY_PREFIX}:*"))
    assert keys
    epochs = {redis_epochs.epoch_key(s).encode() for s in range(stack.settings.shard_count)}
    ttls = {key: client.ttl(key) for key in keys if key not in epochs}
    assert all(0 < ttl <= 3600 for ttl in ttls.values()), ttls
    assert_exact(stack, stream)


def test_a_click_postgresql_refuses_is_dead_lettered_and_its_batch_mates_stored(
        stack: Stack) -> None:
    with postgresql_refusing(stack, "ad-poison"):
        now = time.time()
        stream = one_click_stream(40, now)
        poison = {"click_id": "poison", "ad_id": "ad-poison", "clicked_at": now - 1}
        publish(stack, [*stream.bodies[:20], json.dumps(poison).encode(), *stream.bodies[20:]])

        summary = run_burst(stack)

        assert_exact(stack, stream)
        [(body, headers)] = dead_letters(stack)
        assert headers[topology.REASON_CODE_HEADER] == "unstorable"
        assert "refuse_poison" in headers[topology.REASON_HEADER]
        assert json.loads(body)["click_id"] == "poison"
        assert summary["dead_letters"] == 1


def test_a_worker_fed_large_messages_shrinks_its_prefetch_to_bound_memory(stack: Stack) -> None:
    rng, now = random.Random(7), time.time()
    bodies = [json.dumps([valid_click(rng, m * 100 + i, now) for i in range(100)]).encode()
              for m in range(100)]
    publish(stack, bodies)

    summary = run_burst(stack)

    assert summary["clicks_stored"] == 10_000
    # 12,000 messages of 100 clicks would be 1.2 million clicks in flight; four batches of
    # 2,000 clicks are 80 messages: the first batch already shows the message size.
    assert summary["prefetch"] <= 100


def test_a_worker_fed_one_click_messages_grows_its_window_at_the_broker(stack: Stack) -> None:
    stream = one_click_stream(3000, time.time(), prefix="grow")
    publish(stack, stream.bodies)

    summary = run_burst(stack)

    assert summary["clicks_stored"] == 3000
    # It starts with a window of 200 messages. Had the broker ignored the larger
    # window, every batch would hold at most 200 messages: 15 batches or more.
    # One click per message: four batches of 2,000 clicks in flight, under the ceiling.
    assert summary["prefetch"] == 8000
    assert summary["batches"] <= 6, summary


def test_a_window_resized_mid_stream_loses_and_repeats_nothing(stack: Stack) -> None:
    # Small messages, then large ones, then small ones again: the worker shrinks its
    # window, then grows it, re-subscribing each time. pika hands back (requeues)
    # whatever the broker had sent the old consumer and the worker had not yet taken.
    rng, now = random.Random(5), time.time()
    first = one_click_stream(3000, now, seed=2, prefix="small-before")
    large: list[list[dict[str, object]]] = [
        [{**valid_click(rng, m * 100 + i, now), "click_id": f"large-{m}-{i}"}
         for i in range(100)] for m in range(60)]
    last = one_click_stream(6000, now, seed=3, prefix="small-after")
    stream = first
    for message in large:
        stream.bodies.append(json.dumps(message).encode())
        for click in message:
            stream.click_ids.add(str(click["click_id"]))
            stream.expected[(minute_of(float(click["clicked_at"])), str(click["ad_id"]))] += 1
    stream.bodies.extend(last.bodies)
    stream.click_ids |= last.click_ids
    stream.expected += last.expected
    publish(stack, stream.bodies)

    summary = run_burst(stack)

    assert_exact(stack, stream)
    assert queue_counts(stack) == (0, 0)
    assert summary["prefetch_changes"] >= 2, summary  # it shrank, then grew again
    assert summary["messages"] == len(stream.bodies)  # each acked once, none counted twice
    assert summary["duplicates"] == 0


def test_custom_dimensions_are_stored_in_raw_and_a_bad_object_is_dead_lettered(
        stack: Stack) -> None:
    now = time.time()
    clicks = [
        {"click_id": "with", "ad_id": "a1", "clicked_at": now - 5,
         "dimensions": {"os": "13", "device_model": "1"}},
        {"click_id": "accented", "ad_id": "a1", "clicked_at": now - 5,
         "dimensions": {"os": "\u00e9t\u00e9"}},
        {"click_id": "empty", "ad_id": "a2", "clicked_at": now - 5, "dimensions": {}},
        {"click_id": "without", "ad_id": "a2", "clicked_at": now - 5},
        {"click_id": "bad-name", "ad_id": "a1", "clicked_at": now - 5,
         "dimensions": {"country": "FR"}},
        {"click_id": "bad-value", "ad_id": "a1", "clicked_at": now - 5,
         "dimensions": {"os": 13}},
    ]
    publish(stack, [json.dumps(clicks).encode()])

    run_burst(stack)

    stored = {str(c): d for c, d in sql(stack, "SELECT click_id, dimensions FROM raw.ad_clicks")}
    assert stored == {"with": {"os": "13", "device_model": "1"},
                      "accented": {"os": "\u00e9t\u00e9"}, "empty": None, "without": None}
    ledger = sorted((int(i), str(code), str(detail)) for i, code, detail in sql(
        stack, "SELECT element_index, reason_code, reason FROM raw.rejected_clicks"))
    assert [(i, code) for i, code, _ in ledger] == [(4, "invalid_dimensions"),
                                                    (5, "invalid_dimensions")]
    assert "dimension name 'country' is reserved" in ledger[0][2]
    assert "dimension 'os' must be a string, got int" in ledger[1][2]
    assert Counter(h[topology.REASON_CODE_HEADER] for _, h in dead_letters(stack)) == Counter(
        {"invalid_dimensions": 2})
