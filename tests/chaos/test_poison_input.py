"""Scenario 7: poison input. Over 10,000 hostile payloads drawn with Hypothesis (poison.py).

Each body is classified by the test's own oracle (click_contract.py), never by
the code under test. Then, against one real ingest worker:
- every invalid element, and every body rejected whole, is in
  farloom.clicks.dead, with a reason code and a reason, and once in the
  rejected-click ledger (raw.rejected_clicks) with the same;
- every valid click (SQL and shell metacharacters included) is in raw
  verbatim, once, and counted in Redis in its minute, but for the clicks that
  contradict the owner of OWNED_AD in the preloaded ads catalog: those are
  dead-lettered as ``ad_owner_mismatch``, known by their click id;
- valid canary clicks published between chunks of poison are stored before
  the next chunk is even published: poison never stalls the stream;
- the worker never restarts: the same process, alive at the end.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from farloom_tasks.core.ad_owners import MISMATCH
from farloom_tasks.stores import rejected_clicks, topology
from tests.chaos.click_contract import Verdict, judge_body
from tests.chaos.pipeline import record_outcome
from tests.chaos.poison import OWNED_AD, OWNED_BY, draw_messages, with_unique_click_ids
from tests.chaos.processes import PipelineProcess
from tests.support.broker import dead_letters, publish, queue_depth
from tests.support.database import raw_rows, sql
from tests.support.redis_view import redis_minute_counts
from tests.support.stack import Stack
from tests.support.waiting import seconds_until, wait_for

MAX_BYTES = 65_536  # the worker's FARLOOM_MAX_MESSAGE_BYTES: oversized bodies stay cheap
MESSAGES = 4_000
CHUNKS = 8
CANARY_CLICKS = 25


def _canonical(body: bytes) -> str:
    return json.dumps(json.loads(body), sort_keys=True)


def _dead_letters(stack: Stack) -> list[tuple[str, str, int | None, bytes]]:
    """(reason code, reason, element index, body) of every dead letter, left in place."""
    letters = []
    for body, headers in dead_letters(stack):
        index = headers.get(topology.ELEMENT_INDEX_HEADER)
        letters.append((str(headers.get(topology.REASON_CODE_HEADER, "")),
                        str(headers.get(topology.REASON_HEADER, "")),
                        None if index is None else int(index), body))
    return letters


def _canary_stored(stack: Stack, chunk: int) -> Callable[[], bool]:
    def stored() -> bool:
        found = sql(stack, "SELECT count(*) FROM raw.ad_clicks "
                    f"WHERE click_id LIKE 'canary-{chunk}-%'")[0][0]
        return bool(found == CANARY_CLICKS)
    return stored


def test_over_ten_thousand_hostile_payloads_are_sorted_exactly_without_a_worker_restart(
        stack: Stack, tmp_path: Path) -> None:
    now = time.time()
    skew = stack.settings.max_clock_skew_seconds
    bodies = with_unique_click_ids(draw_messages(MESSAGES, now, MAX_BYTES))
    catalog = {OWNED_AD: OWNED_BY}
    sql(stack, "INSERT INTO agg.ads (ad_id, campaign_id, advertiser_id) VALUES (:a, :c, :v)",
        a=OWNED_AD, c=OWNED_BY[0], v=OWNED_BY[1])
    verdicts: list[Verdict] = [judge_body(b, now=now, max_skew=skew, max_bytes=MAX_BYTES,
                                          catalog=catalog) for b in bodies]

    # The truth, from the oracle alone.
    stored: Counter[tuple[str, str, int]] = Counter()
    dead: Counter[tuple[str | None, int | None, str]] = Counter()
    for body, verdict in zip(bodies, verdicts, strict=True):
        if verdict.whole_message_code is not None:
            dead[(verdict.whole_message_code, None, repr(body))] += 1
            continue
        for _, click in verdict.valid:
            stored[(click.click_id, click.ad_id, click.minute)] += 1
        for index, element in verdict.invalid:
            dead[(None, index, json.dumps(element, sort_keys=True))] += 1
        for _, click in verdict.mismatched:
            dead[(MISMATCH, None, click.click_id)] += 1
    payloads = sum(1 if v.whole_message_code else len(v.valid) + len(v.invalid)
                   + len(v.mismatched) for v in verdicts)
    whole_codes = Counter(v.whole_message_code for v in verdicts if v.whole_message_code)
    mixed = sum(1 for v in verdicts if v.is_batch and v.valid and v.invalid)
    assert payloads >= 10_000, payloads
    assert set(whole_codes) == {"oversized", "not_utf8", "invalid_json"}, whole_codes
    assert len(stored) > 2_000 and sum(1 for k in dead if k[0] is None) > 1_000
    assert mixed > 200, mixed
    assert sum(1 for k in dead if k[0] == MISMATCH) > 100

    env = {**stack.env, "FARLOOM_MAX_MESSAGE_BYTES": str(MAX_BYTES), "FARLOOM_BATCH_SIZE": "500"}
    ingest = PipelineProcess("ingest", [sys.executable, "-m", "farloom_tasks.cli", "ingest"],
                             env, tmp_path / "ingest.log", ready_line="consuming farloom.clicks")
    canary_waits: list[float] = []
    started = time.monotonic()
    try:
        ingest.start()
        pid = ingest.pid
        size = -(-len(bodies) // CHUNKS)
        for chunk in range(CHUNKS):
            at = round(time.time() - 1, 3)
            canary = [{"click_id": f"canary-{chunk}-{n}", "ad_id": "canary", "clicked_at": at}
                      for n in range(CANARY_CLICKS)]
            for n in range(CANARY_CLICKS):
                stored[(f"canary-{chunk}-{n}", "canary", int(at // 60) * 60)] += 1
            # The canary goes in the middle of its chunk of poison.
            part = bodies[chunk * size:(chunk + 1) * size]
            publish(stack, [*part[:size // 2], json.dumps(canary).encode(), *part[size // 2:]])
            canary_waits.append(seconds_until(f"canary {chunk} to be stored",
                                              _canary_stored(stack, chunk), 60))
        wait_for("every click stored and every dead letter published",
                 lambda: raw_rows(stack) >= sum(stored.values())
                 and queue_depth(stack, topology.DEAD_QUEUE) >= sum(dead.values()), 120)
        elapsed = time.monotonic() - started
        assert ingest.alive() and ingest.pid == pid and ingest.starts == 1, ingest.tail()
    finally:
        ingest.stop()

    rows = Counter((str(c), str(a), int(m)) for c, a, m in sql(
        stack, "SELECT click_id, ad_id, extract(epoch FROM minute)::bigint FROM raw.ad_clicks"))
    assert rows == stored, f"raw has extra {rows - stored}, lacks {stored - rows}"
    per_minute: Counter[tuple[int, str]] = Counter()
    for (_, ad_id, minute), n in stored.items():
        per_minute[(minute, ad_id)] += n
    assert redis_minute_counts(stack) == per_minute

    letters = _dead_letters(stack)
    assert all(code and reason for code, reason, _, _ in letters), "a dead letter lacks a reason"
    found: Counter[tuple[str | None, int | None, str]] = Counter()
    for code, _, index, body in letters:
        if code in ("oversized", "not_utf8", "invalid_json"):
            found[(code, None, repr(body))] += 1
        elif code == MISMATCH:  # the validated click, as stored clicks are known
            found[(code, index, json.loads(body)["click_id"])] += 1
        else:
            found[(None, index, _canonical(body))] += 1
    assert found == dead, f"dead letters: extra {found - dead}, missing {dead - found}"
    # The rejected-click ledger holds each of them once, with its reason and its element
    # (cut to the ledger's bound), and nothing else.
    ledger = Counter((str(code), int(index), bytes(element), int(size)) for code, index, element,
                     size in sql(stack, "SELECT reason_code, element_index, element, "
                                 "element_bytes FROM raw.rejected_clicks"))
    expected_ledger = Counter(
        (code, -1 if index is None else index, body[:rejected_clicks.ELEMENT_BYTES], len(body))
        for code, _, index, body in letters)
    assert ledger == expected_ledger, (
        f"ledger: extra {ledger - expected_ledger}, missing {expected_ledger - ledger}")

    record_outcome(
        "7-poison-input",
        injected=f"{payloads} hostile payloads in {len(bodies)} messages (Hypothesis, "
                 f"derandomized), {CHUNKS} valid canary messages between them",
        valid_clicks=sum(stored.values()), dead_letters=len(letters),
        whole_message_rejections=dict(whole_codes), mixed_batches=mixed,
        lost_clicks=sum((stored - rows).values()), double_counted_clicks=sum(
            (rows - stored).values()), worker_restarts=0,
        canary_max_wait_seconds=round(max(canary_waits), 2), seconds_total=round(elapsed, 1))
