"""In-order acks with a fake channel: delivery order, failed writes, lost connections."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future

import psycopg2
import pytest

from farloom_tasks.core.batching import Batch
from farloom_tasks.core.clicks import Rejection
from farloom_tasks.core.messages import DeadLetter
from farloom_tasks.pipeline.in_order_acks import InFlight, InOrderAcks
from farloom_tasks.pipeline.ingest_sink import Written


class FakeChannel:
    def __init__(self) -> None:
        self.acks: list[tuple[int, bool]] = []

    def basic_ack(self, delivery_tag: int, multiple: bool) -> None:
        self.acks.append((delivery_tag, multiple))


class FakeDeadLetters:
    def __init__(self, channel: FakeChannel) -> None:
        self.channel = channel
        self.published: list[tuple[str, int]] = []  # (reason code, acks already sent)

    def publish(self, letters: Sequence[DeadLetter]) -> None:
        self.published += [(d.rejection.code, len(self.channel.acks)) for d in letters]


class Harness:
    """Two writers, batches started in delivery order, each with a future the test settles."""

    def __init__(self) -> None:
        self.acks: InOrderAcks[str] = InOrderAcks(["w1", "w2"])
        self.channel = FakeChannel()
        self.dead = FakeDeadLetters(self.channel)
        self.acked: list[tuple[int, str, int]] = []  # (last tag, writer, new clicks)
        self.rewritten: list[InFlight[str]] = []
        self.rewrite_future: Future[Written] = Future()

    def start(self, last_tag: int, messages: int = 10, *, clicks: bool = True) -> Future[Written]:
        entry = self.acks.start(Batch(last_delivery_tag=last_tag, messages=messages),
                                started=0.0)
        future: Future[Written] = Future()
        if clicks:
            entry.future = future
        return future

    def rewrite(self, entry: InFlight[str]) -> Future[Written]:
        self.rewritten.append(entry)
        return self.rewrite_future

    def on_acked(self, entry: InFlight[str], written: Written) -> None:
        self.acked.append((entry.batch.last_delivery_tag, entry.writer, written.new_clicks))

    def ack_finished(self) -> None:
        self.acks.ack_finished(self.channel, self.dead, rewrite=self.rewrite,
                               acked=self.on_acked)


def test_a_finished_batch_is_acked_with_one_multiple_ack_up_to_its_last_tag() -> None:
    h = Harness()
    h.start(10).set_result(Written(new_clicks=7))
    h.ack_finished()
    assert h.channel.acks == [(10, True)]
    assert h.acked == [(10, "w1", 7)]
    assert list(h.acks.idle) == ["w2", "w1"] and len(h.acks) == 0


def test_a_later_batch_that_finishes_first_waits_for_the_earlier_one() -> None:
    h = Harness()
    first, second = h.start(10), h.start(20)
    second.set_result(Written(new_clicks=2))
    h.ack_finished()
    assert h.channel.acks == []  # tag 20 would also ack 1..10, which is not durable yet
    assert h.acks.messages == 20 and not h.acks.idle
    first.set_result(Written(new_clicks=1))
    h.ack_finished()
    assert h.channel.acks == [(10, True), (20, True)]
    assert [tag for tag, _, _ in h.acked] == [10, 20]


def test_a_batch_of_dead_letters_only_is_acked_in_its_turn() -> None:
    h = Harness()
    first = h.start(10)
    h.start(20, clicks=False)
    h.ack_finished()
    assert h.channel.acks == []
    first.set_result(Written())
    h.ack_finished()
    assert h.channel.acks == [(10, True), (20, True)]


def test_a_failed_write_acks_nothing_and_stays_in_flight_with_every_later_batch() -> None:
    h = Harness()
    first, second = h.start(10), h.start(20)
    second.set_result(Written(new_clicks=2))
    first.set_exception(RuntimeError("a bug in the write"))
    with pytest.raises(RuntimeError, match="a bug"):
        h.ack_finished()
    assert h.channel.acks == [] and h.acked == []
    assert len(h.acks) == 2 and not h.acks.idle
    with pytest.raises(RuntimeError):  # asked again, the answer is the same
        h.ack_finished()
    assert h.channel.acks == []


def test_a_batch_refused_as_data_is_rewritten_one_by_one_before_anything_is_acked() -> None:
    h = Harness()
    first, second = h.start(10), h.start(20)
    second.set_result(Written(new_clicks=3))
    first.set_exception(psycopg2.DataError("value too long"))
    h.ack_finished()
    assert [e.batch.last_delivery_tag for e in h.rewritten] == [10]
    assert h.rewritten[0].writer == "w1"  # on the same writer's connections
    assert h.channel.acks == []
    h.ack_finished()
    assert h.channel.acks == [] and len(h.rewritten) == 1  # waits for the rewrite
    refused = DeadLetter(b"{}", Rejection("unstorable", "value too long"))
    h.rewrite_future.set_result(Written(new_clicks=4, refused=[refused]))
    h.ack_finished()
    assert h.dead.published == [("unstorable", 0)]  # confirmed before the ack
    assert h.channel.acks == [(10, True), (20, True)]
    assert h.acked == [(10, "w1", 4), (20, "w2", 3)]


def test_a_lost_connection_acks_nothing_and_forgets_every_batch_in_flight() -> None:
    h = Harness()
    h.start(10).set_result(Written(new_clicks=1))
    running = h.start(20)
    threading.Timer(0.05, running.set_result, [Written(new_clicks=2)]).start()
    assert h.acks.forget() == 20  # messages the broker will redeliver
    assert running.done()  # waited for the running write: its writer is free only now
    assert sorted(h.acks.idle) == ["w1", "w2"] and len(h.acks) == 0
    h.ack_finished()
    assert h.channel.acks == [] and h.acked == []


def test_batches_on_a_new_connection_are_acked_with_its_own_tags() -> None:
    h = Harness()
    h.start(10).set_result(Written())  # finished, but its connection was lost before the ack
    h.acks.forget()
    h.start(3).set_result(Written())
    h.ack_finished()
    assert h.channel.acks == [(3, True)]  # never tag 10: it meant something on the old channel


def test_the_ack_order_module_imports_no_pika() -> None:
    code = ("import sys, farloom_tasks.pipeline.in_order_acks; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'pika'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
