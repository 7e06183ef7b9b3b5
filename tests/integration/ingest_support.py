"""Helpers of the ingest worker's integration tests: streams, their ground truth, workers.

Every expected figure is computed here from the test's own input; the system
under test is only read back (raw rows, Redis sets, the dead-letter queue).
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from farloom_tasks import processes
from farloom_tasks.core.windows import minute_of
from farloom_tasks.stores import topology
from tests.support.database import raw_rows, sql
from tests.support.redis_view import redis_minute_counts
from tests.support.stack import PROJECT_ROOT, Stack

WAIT_SECONDS = 90.0  # upper bound of every wait; a healthy run needs a few seconds


@dataclass
class Stream:
    """Message bodies plus the truth a correct pipeline must produce from them."""

    bodies: list[bytes] = field(default_factory=list)
    expected: Counter[tuple[int, str]] = field(default_factory=Counter)  # (minute, ad) -> n
    click_ids: set[str] = field(default_factory=set)
    invalid: list[tuple[str, int | None]] = field(default_factory=list)  # (code, index)
    # Per message holding invalid elements: its (code, ledger index) pairs, -1 for a bare
    # object; what raw.rejected_clicks must hold for it.
    invalid_messages: list[tuple[tuple[str, int], ...]] = field(default_factory=list)


def valid_click(rng: random.Random, number: int, now: float, ads: int = 40) -> dict[str, Any]:
    return {"click_id": f"click-{number}", "ad_id": f"ad-{rng.randrange(ads)}",
            "clicked_at": round(now - rng.uniform(0, 600), 3)}


INVALID_ELEMENTS: list[tuple[Callable[[float], Any], str]] = [
    (lambda now: {"ad_id": "ad-1", "clicked_at": now}, "missing_field"),
    (lambda now: {"click_id": "bad-type", "ad_id": ["x"], "clicked_at": now}, "wrong_type"),
    (lambda now: {"click_id": "future", "ad_id": "ad-1", "clicked_at": now + 86_400},
     "future_timestamp"),
    (lambda now: {"click_id": "bad-ip", "ad_id": "ad-1", "clicked_at": now, "ip": "1.2.3"},
     "bad_value"),
    (lambda now: {"click_id": "c" * 65, "ad_id": "ad-1", "clicked_at": now}, "bad_length"),
    (lambda now: "not an object", "not_object"),
]


def mixed_stream(seed: int, clicks: int, now: float, *, max_per_message: int = 6,
                 invalid_share: float = 0.0, duplicate_share: float = 0.0) -> Stream:
    """Messages of 1..max_per_message elements: new clicks, repeats of earlier ones
    (within the message or from any earlier message), and invalid elements."""
    rng = random.Random(seed)
    stream = Stream()
    sent: list[dict[str, Any]] = []
    number = 0
    while number < clicks:
        elements: list[Any] = []
        invalid: list[tuple[str, int | None]] = []
        for _ in range(rng.randint(1, max_per_message)):
            roll = rng.random()
            if roll < invalid_share:
                make, code = rng.choice(INVALID_ELEMENTS)
                invalid.append((code, len(elements)))
                elements.append(make(now))
            elif roll < invalid_share + duplicate_share and sent:
                elements.append(rng.choice(sent))  # may be from this very message
            else:
                click = valid_click(rng, number, now)
                number += 1
                elements.append(click)
                sent.append(click)
                stream.click_ids.add(click["click_id"])
                stream.expected[(minute_of(click["clicked_at"]), click["ad_id"])] += 1
        if len(elements) == 1 and rng.random() < 0.5:
            # A bare object rather than an array: its dead letter has no element index.
            stream.bodies.append(json.dumps(elements[0]).encode())
            invalid = [(code, None) for code, _ in invalid]
        else:
            stream.bodies.append(json.dumps(elements).encode())
        stream.invalid.extend(invalid)
        if invalid:
            stream.invalid_messages.append(
                tuple((code, -1 if index is None else index) for code, index in invalid))
    return stream


def one_click_stream(count: int, now: float, *, seed: int = 1, prefix: str = "click") -> Stream:
    rng = random.Random(seed)
    stream = Stream()
    for number in range(count):
        click = valid_click(rng, number, now)
        click["click_id"] = f"{prefix}-{number}"
        stream.bodies.append(json.dumps(click).encode())
        stream.click_ids.add(click["click_id"])
        stream.expected[(minute_of(click["clicked_at"]), click["ad_id"])] += 1
    return stream


def raw_counts(stack: Stack) -> Counter[tuple[int, str]]:
    rows = sql(stack, "SELECT extract(epoch FROM minute)::bigint, ad_id, count(*) "
               "FROM raw.ad_clicks GROUP BY 1, 2")
    return Counter({(int(m), str(ad)): int(n) for m, ad, n in rows})


def assert_exact(stack: Stack, stream: Stream) -> None:
    """Raw rows and Redis counts both equal the stream's own truth, click for click."""
    assert raw_rows(stack) == len(stream.click_ids)
    assert raw_counts(stack) == stream.expected
    assert redis_minute_counts(stack) == stream.expected


def ledger_by_message(stack: Stack) -> Counter[frozenset[tuple[str, int]]]:
    """raw.rejected_clicks grouped by source message: one set of (code, index) each."""
    groups: dict[str, set[tuple[str, int]]] = {}
    for source_id, index, code in sql(stack, "SELECT source_id, element_index, reason_code "
                                      "FROM raw.rejected_clicks"):
        groups.setdefault(str(source_id), set()).add((str(code), int(index)))
    return Counter(frozenset(group) for group in groups.values())


def expected_ledger(stream: Stream) -> Counter[frozenset[tuple[str, int]]]:
    return Counter(frozenset(message) for message in stream.invalid_messages)


def ledger_rows(stack: Stack) -> int:
    return int(sql(stack, "SELECT count(*) FROM raw.rejected_clicks")[0][0])


def dead_letter_ids(stack: Stack) -> list[str | None]:
    """The AMQP message_id of every message in farloom.clicks.dead, left in place."""
    connection = stack.amqp()
    ids: list[str | None] = []
    try:
        channel = connection.channel()
        while True:
            method, properties, _ = channel.basic_get(topology.DEAD_QUEUE, auto_ack=False)
            if method is None:
                return ids
            ids.append(properties.message_id)
    finally:
        connection.close()


def assert_rejections_exact(stack: Stack, stream: Stream) -> None:
    """One ledger row per invalid element of the stream, by message and index, with its
    reason; the dead letters, however many copies delivery made, one message_id each."""
    assert ledger_rows(stack) == len(stream.invalid)
    assert ledger_by_message(stack) == expected_ledger(stream)
    ids = dead_letter_ids(stack)
    assert None not in ids and len(set(ids)) == len(stream.invalid) <= len(ids)


def worker_env(stack: Stack, **settings: object) -> dict[str, str]:
    env = stack.env
    env.pop("FARLOOM_FAILPOINTS", None)
    env.update({f"FARLOOM_{name.upper()}": str(value) for name, value in settings.items()})
    return env


def run_burst(stack: Stack, *args: str, **settings: object) -> dict[str, Any]:
    """Run ``farloom ingest --burst`` to completion; return its JSON summary."""
    done = subprocess.run([sys.executable, "-m", "farloom_tasks.cli", "ingest", "--burst",
                           "--idle-seconds", "0.5", *args],
                          env=worker_env(stack, **settings), cwd=PROJECT_ROOT, text=True,
                          capture_output=True, timeout=WAIT_SECONDS)
    assert done.returncode == 0, done.stderr[-3000:]
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def run_bursts_side_by_side(stack: Stack, count: int, **settings: object) -> list[int]:
    """Run ``count`` ``farloom ingest --burst`` workers at once to completion (competing
    consumers); their exit codes. Any still running on the way out is SIGKILLed."""
    command = [sys.executable, "-m", "farloom_tasks.cli", "ingest", "--burst"]
    env = worker_env(stack, **settings)
    workers = [subprocess.Popen(command, env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for _ in range(count)]
    try:
        return [process.wait(timeout=WAIT_SECONDS) for process in workers]
    finally:
        for process in workers:
            processes.stop(process, sig=signal.SIGKILL, grace=WAIT_SECONDS)


@contextlib.contextmanager
def worker(stack: Stack, *args: str, log: IO[str] | None = None,
           **settings: object) -> Iterator[subprocess.Popen[str]]:
    """A long-running ingest worker, SIGKILLed on the way out whatever happened."""
    process = subprocess.Popen([sys.executable, "-m", "farloom_tasks.cli", "ingest", *args],
                               env=worker_env(stack, **settings), cwd=PROJECT_ROOT, text=True,
                               stdout=log or subprocess.DEVNULL,
                               stderr=subprocess.STDOUT if log else subprocess.DEVNULL)
    try:
        yield process
    finally:
        processes.stop(process, sig=signal.SIGKILL, grace=WAIT_SECONDS)


def read_log(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


@contextlib.contextmanager
def postgresql_refusing(stack: Stack, ad_id: str) -> Iterator[None]:
    """A validation gap, made real: a CHECK constraint ``refuse_poison`` makes PostgreSQL
    itself refuse clicks on ``ad_id`` while the block runs."""
    sql(stack, f"ALTER TABLE raw.ad_clicks ADD CONSTRAINT refuse_poison CHECK (ad_id <> '{ad_id}')")
    try:
        yield
    finally:
        sql(stack, "ALTER TABLE raw.ad_clicks DROP CONSTRAINT refuse_poison")
