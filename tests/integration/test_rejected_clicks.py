"""The rejected-click ledger (raw.rejected_clicks) against a real ingest worker.

Every expected row is computed from the test's own input: one row per invalid
element (by source message and element index) and per body rejected whole,
however often a message is delivered; distinct messages never share rows.
"""

from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter

import pika

from farloom_tasks.core.clicks import Rejection
from farloom_tasks.core.message_identity import dead_letter_message_id, source_identity
from farloom_tasks.core.messages import DeadLetter
from farloom_tasks.core.partitions import DAY, HOUR, start_of
from farloom_tasks.core.windows import minute_of
from farloom_tasks.pipeline import retention
from farloom_tasks.stores import rejected_clicks, topology
from farloom_tasks.stores.transactions import transaction
from tests.integration.ingest_support import (
    WAIT_SECONDS,
    Stream,
    assert_exact,
    assert_rejections_exact,
    dead_letter_ids,
    expected_ledger,
    ledger_by_message,
    ledger_rows,
    mixed_stream,
    one_click_stream,
    postgresql_refusing,
    run_burst,
    valid_click,
    worker,
)
from tests.support.broker import dead_letters, publish
from tests.support.database import sql
from tests.support.stack import Stack, isolated_stack


def _publish_plain(stack: Stack, bodies: list[bytes], *, message_id: str | None = None) -> None:
    """Publish ``bodies`` with no stamp, timestamp or message_id unless given one."""
    publish(stack, [])  # declares the topology
    connection = stack.amqp()
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish(topology.CLICKS_EXCHANGE, "", body, pika.BasicProperties(
                delivery_mode=topology.PERSISTENT, message_id=message_id))
    finally:
        connection.close()


def test_every_rejected_element_and_whole_body_is_one_ledger_row_with_its_reason(
        stack: Stack) -> None:
    stream = mixed_stream(21, 300, time.time(), invalid_share=0.3)
    huge = b"[" + b" " * 1_100_000 + b"]"
    whole = [(b'{"click_id": "x", "ad_id": "\xff\xfe", "clicked_at": 1}', "not_utf8"),
             (b'{"click_id": "x", ', "invalid_json"), (huge, "oversized")]
    publish(stack, stream.bodies + [body for body, _ in whole])

    run_burst(stack, batch_size=50)

    expected = expected_ledger(stream) + Counter(
        frozenset({(code, -1)}) for _, code in whole)
    assert ledger_by_message(stack) == expected
    assert ledger_rows(stack) == len(stream.invalid) + len(whole)
    [(element, size, truncated)] = sql(
        stack, "SELECT element, element_bytes, element_truncated FROM raw.rejected_clicks "
        "WHERE reason_code = 'oversized'")
    assert bytes(element) == huge[:rejected_clicks.ELEMENT_BYTES]
    assert (size, truncated) == (len(huge), True)
    reasons = sql(stack, "SELECT reason FROM raw.rejected_clicks")
    assert all(reason for (reason,) in reasons)
    # Each dead letter carries the message_id its ledger row's key gives it.
    keys = sql(stack, "SELECT source_id, element_index FROM raw.rejected_clicks")
    assert sorted(i or "" for i in dead_letter_ids(stack)) == sorted(
        dead_letter_message_id(source, None if index == -1 else index)
        for source, index in keys)
    assert_exact(stack, stream)


def _kill_after_dead_letters_then_drain(stack: Stack) -> None:
    # Every message holds a valid click and a rejected element, so the batch the worker
    # dies on (after_redis: written, its dead letters confirmed, not acked) has some.
    now = time.time()
    rng = random.Random(5)
    stream = Stream()
    for number in range(200):
        click = valid_click(rng, number, now)
        stream.bodies.append(json.dumps([click, {"click_id": f"bad-{number}"}]).encode())
        stream.click_ids.add(click["click_id"])
        stream.expected[(minute_of(click["clicked_at"]), click["ad_id"])] += 1
        stream.invalid.append(("missing_field", 1))
        stream.invalid_messages.append((("missing_field", 1),))
    publish(stack, stream.bodies)

    with worker(stack, "--burst", failpoints="after_redis:3", batch_size=10,
                prefetch_count=40) as crashing:
        crashing.wait(timeout=WAIT_SECONDS)
    assert crashing.returncode == -signal.SIGKILL
    run_burst(stack)

    copies = dead_letter_ids(stack)
    assert len(copies) > len(set(copies))  # dead letters went out twice ...
    assert_rejections_exact(stack, stream)  # ... the ledger holds each rejection once
    assert_exact(stack, stream)


def test_a_worker_killed_after_its_dead_letters_went_out_leaves_one_row_per_rejection(
        stack: Stack) -> None:
    _kill_after_dead_letters_then_drain(stack)


def test_on_quorum_queues_a_redelivery_is_the_same_message_to_the_ledger() -> None:
    # A quorum queue adds x-delivery-count to a redelivered message's headers: the
    # identity leaves the broker's headers out, so the redelivery still finds its rows.
    with isolated_stack(queue_type="quorum") as quorum:
        quorum.reset()  # declares the topology, quorum
        _kill_after_dead_letters_then_drain(quorum)


def test_a_message_delivered_twice_adds_no_second_row_and_its_dead_letters_share_an_id(
        stack: Stack) -> None:
    body = json.dumps([{"click_id": "ok", "ad_id": "ad-1", "clicked_at": time.time() - 5},
                       {"ad_id": "ad-1", "clicked_at": time.time()}]).encode()
    # The same message_id twice: what a publisher's retry of an unconfirmed message sends.
    _publish_plain(stack, [body], message_id="retried-1")
    run_burst(stack)
    _publish_plain(stack, [body], message_id="retried-1")
    run_burst(stack)

    assert sql(stack, "SELECT source_id, element_index, reason_code "
               "FROM raw.rejected_clicks") == [("amqp:retried-1", 1, "missing_field")]
    ids = dead_letter_ids(stack)
    assert len(ids) == 2 and len(set(ids)) == 1  # at least once on the wire, one id


def test_two_messages_with_the_same_invalid_element_are_two_rows(stack: Stack) -> None:
    bad = json.dumps({"click_id": "bad", "ad_id": "ad-1", "clicked_at": time.time() + 86_400})
    publish(stack, [bad.encode(), bad.encode()])  # stamped apart: two messages

    run_burst(stack)

    rows = sql(stack, "SELECT source_id, element_index, reason_code FROM raw.rejected_clicks")
    assert len(rows) == 2 and len({source for source, _, _ in rows}) == 2
    assert {(index, code) for _, index, code in rows} == {(-1, "future_timestamp")}
    assert len(set(dead_letter_ids(stack))) == 2


def test_identical_unstamped_bodies_without_message_id_are_one_message_as_documented(
        stack: Stack) -> None:
    body = b'{"click_id": "x"}'
    _publish_plain(stack, [body, body])

    run_burst(stack)

    assert sql(stack, "SELECT source_id, element_index FROM raw.rejected_clicks") == [
        (source_identity(None, None, None, body), -1)]
    assert len(dead_letters(stack)) == 2


def test_a_click_postgresql_refuses_enters_the_ledger_once_by_its_click_identity(
        stack: Stack) -> None:
    with postgresql_refusing(stack, "ad-poison"):
        now = time.time()
        stream = one_click_stream(30, now)
        poison = json.dumps({"click_id": "poison", "ad_id": "ad-poison",
                             "clicked_at": now - 1}).encode()
        publish(stack, [*stream.bodies[:15], poison, *stream.bodies[15:]])
        run_burst(stack)
        publish(stack, [poison])  # sent again: the same click, refused again
        run_burst(stack)

    [(source_id, index, code, element)] = sql(
        stack, "SELECT source_id, element_index, reason_code, element "
        "FROM raw.rejected_clicks")
    assert (index, code) == (-1, "unstorable") and source_id.startswith("click-sha256:")
    assert json.loads(bytes(element))["click_id"] == "poison"
    assert_exact(stack, stream)


def _record(stack: Stack, source_id: str, rejected_at: float) -> None:
    engine = stack.engine()
    try:
        with transaction(engine) as cursor:
            rejected_clicks.record(cursor, [DeadLetter(b"{}", Rejection("missing_field", "x"),
                                                       0, source_id)], rejected_at)
    finally:
        engine.dispose()


def test_retention_trims_the_ledger_with_raws_setting_and_cutoff(stack: Stack) -> None:
    now = time.time()
    # Raw's cutoff: the start of the raw partition holding now - retention.
    cutoff = start_of(now - 2 * DAY, HOUR)
    for source_id, at in (("long-ago", now - 9 * DAY), ("just-before", cutoff - 0.5),
                          ("at-cutoff", cutoff), ("recent", now - 60)):
        _record(stack, source_id, at)

    engine = stack.engine()
    try:
        kept_all = retention.maintain(
            engine, stack.with_settings(raw_retention_days=0).settings, now)
        assert ledger_rows(stack) == 4 and "raw.rejected_clicks" not in kept_all.trimmed
        report = retention.maintain(
            engine, stack.with_settings(raw_retention_days=2).settings, now)
    finally:
        engine.dispose()

    assert report.trimmed["raw.rejected_clicks"] == 2
    assert sorted(r[0] for r in sql(stack, "SELECT source_id FROM raw.rejected_clicks")) == [
        "at-cutoff", "recent"]


def test_a_reason_holding_nul_or_an_unpaired_surrogate_is_stored_escaped(
        stack: Stack) -> None:
    engine = stack.engine()
    try:
        with transaction(engine) as cursor:
            rejected_clicks.record(cursor, [DeadLetter(
                b"\x00\xff", Rejection("bad_value", "user_id holds \x00 and \ud800" + "x" * 2000),
                None, "amqp:nul")], time.time())
    finally:
        engine.dispose()

    [(reason, element)] = sql(stack, "SELECT reason, element FROM raw.rejected_clicks")
    assert reason.startswith("user_id holds \\x00 and \\ud800")
    assert len(reason) <= rejected_clicks.REASON_CHARS + 10  # escapes lengthen it a little
    assert bytes(element) == b"\x00\xff"
