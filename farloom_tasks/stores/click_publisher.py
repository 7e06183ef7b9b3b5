"""The confirming publisher every log-watcher mode uses: SelectConnection, async confirms.

A ``Source`` hands out ``Outgoing`` messages (both in ``stores/click_source.py``);
the publisher sends them to ``farloom.clicks`` as persistent messages with the
``x-farloom-published-at`` header and keeps at most ``window`` of them
unconfirmed at a time.

Confirm and failure rules:
- A message stays in memory until the broker acks it. Acks (also ``multiple``
  ones) may arrive out of order; the source is told about messages only in
  publish order, as the confirmed prefix grows (``Source.confirmed``), so a
  source that records a position records one that everything before it has
  reached the broker.
- A nacked message, and every unconfirmed one when the connection or channel
  is lost, is republished after reconnecting. That may duplicate a message the
  broker had stored but not yet confirmed; click_id deduplicates it downstream.
  A confirmed message is never sent again.
- Reconnects back off exponentially up to ``max_backoff`` seconds, and each
  attempt is logged with the number of messages waiting to be republished.
- ``amqp_url`` may name several nodes of one cluster (comma-separated): every
  connect, the first and each reconnect, tries them in that order, so the
  publisher fails over to the next node when its node is down.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika
from pika.adapters.select_connection import IOLoop
from pika.spec import Basic

from farloom_tasks.core.backoff import Backoff
from farloom_tasks.errors import BrokerUnavailable
from farloom_tasks.stores import pika_fixes, topology
from farloom_tasks.stores.click_source import Outgoing, PublishStats, Source

log = logging.getLogger(__name__)
logging.getLogger("pika").setLevel(logging.WARNING)  # its INFO lines narrate every connect

INITIAL_BACKOFF_SECONDS = 0.5  # the first reconnect wait; it doubles up to max_backoff
PUMP_CHUNK = 2000  # messages published per ioloop turn, so acks are read in between
IDLE_RECHECK = 0.1  # s before asking an idle source again when it gave no hint


class _Channel:
    """One open channel and the delivery tags it has not had confirmed yet."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.tags: OrderedDict[int, int] = OrderedDict()  # delivery tag -> seq
        self.next_tag = 1


@dataclass(slots=True)
class _Pending:
    message: Outgoing
    done: bool = False


class ConfirmingPublisher:
    """Publishes a Source until it is exhausted (or ``stop()``) and all is confirmed."""

    def __init__(self, amqp_url: str, source: Source, *, queue_type: topology.QueueType,
                 window: int = 10_000, channels: int = 2, max_backoff: float = 30.0,
                 give_up_after: float | None = None,
                 on_progress: Callable[[PublishStats], None] | None = None) -> None:
        # Process-wide, and only where this publisher is used: importing this
        # module leaves pika alone (the naive baseline of `farloom bench publish`
        # must run unpatched).
        pika_fixes.install()
        self._params = topology.connection_parameters(amqp_url, role="publisher")
        self._amqp_url = amqp_url
        self._queue_type = queue_type
        self._source = source
        # message_id = this prefix and the message's seq: a republished message keeps
        # its id, so a consumer knows it for the same message (core.message_identity).
        self._id_prefix = uuid.uuid4().hex
        self._window = window
        self._backoff = Backoff(INITIAL_BACKOFF_SECONDS, max_backoff)
        self._give_up_after = give_up_after
        self._on_progress = on_progress
        self.stats = PublishStats()
        self._pending: OrderedDict[int, _Pending] = OrderedDict()  # seq -> message
        self._resend: deque[int] = deque()
        self._next_seq = 0
        self._exhausted = False
        self._stopping = False
        self._connection: pika.SelectConnection | None = None
        self._channel_count = channels
        self._channels: list[_Channel] = []
        self._turn = 0
        self._pump_due: float | None = None  # monotonic time of the earliest scheduled pump

    # -- public -------------------------------------------------------------
    def run(self) -> PublishStats:
        """Publish until done; raises BrokerUnavailable only after ``give_up_after`` s down."""
        failures = 0  # connections in a row that confirmed nothing
        down_since: float | None = None
        while True:
            confirmed_before = self.stats.messages
            try:
                self._declare()
                self._connect_and_loop()
            except BrokerUnavailable as exc:
                log.warning("broker unavailable: %s", exc)
            if self._finished():
                break
            if self.stats.messages > confirmed_before:
                failures, down_since = 0, None
            now = time.monotonic()
            down_since = down_since or now
            if self._give_up_after is not None and now - down_since > self._give_up_after:
                raise BrokerUnavailable(
                    f"RabbitMQ unreachable for {now - down_since:.0f} s; "
                    f"{len(self._pending):,} messages were not confirmed")
            self._requeue_in_flight()
            self.stats.reconnects += 1
            backoff = self._backoff.delay(failures)
            failures += 1
            log.warning("connection lost; %d unconfirmed messages will be republished; "
                        "reconnecting in %.1f s (%s messages confirmed so far)",
                        len(self._resend), backoff, f"{self.stats.messages:,}")
            time.sleep(backoff)
        self.stats.finished = time.monotonic()
        return self.stats

    def stop(self) -> None:
        """Take no more from the source; finish once what was taken is confirmed.

        Safe to call from a signal handler: it only sets a flag the pump reads. A
        second call (a second Ctrl-C, e.g. while the broker is down) gives up
        on the outstanding confirms by raising KeyboardInterrupt.
        """
        if self._stopping:
            raise KeyboardInterrupt
        self._stopping = True
        log.warning("stopping: waiting for %d unconfirmed messages (again to abandon them)",
                    len(self._pending))

    # -- connection lifecycle ------------------------------------------------
    def _declare(self) -> None:
        connection = topology.connect(self._amqp_url, role="publisher")
        try:
            topology.declare(connection.channel(), self._queue_type)
        finally:
            with topology.translated_errors():
                connection.close()

    def _connect_and_loop(self) -> None:
        # create_connection tries each node's parameters in turn (pika's own
        # failover); a plain SelectConnection takes only one.
        ioloop = IOLoop()

        def done(result: Any) -> None:
            if not isinstance(result, pika.SelectConnection):
                log.warning("cannot connect to RabbitMQ: %r", result)
                ioloop.stop()
                return
            self._connection = result
            result.add_on_close_callback(self._on_closed)
            self._on_open(result)

        pika.SelectConnection.create_connection(self._params, done, custom_ioloop=ioloop)
        try:
            ioloop.start()
        finally:
            ioloop.close()
        self._pump_due = None
        self._connection = None
        self._channels = []

    def _on_open(self, connection: pika.SelectConnection) -> None:
        for _ in range(self._channel_count):
            connection.channel(on_open_callback=self._on_channel_open)

    def _on_closed(self, connection: pika.SelectConnection, reason: Exception) -> None:
        if not self._finished():
            log.warning("RabbitMQ connection closed: %r", reason)
        connection.ioloop.stop()

    def _on_channel_open(self, channel: Any) -> None:
        state = _Channel(channel)
        channel.add_on_close_callback(self._on_channel_closed)

        def ready(_frame: Any) -> None:
            self._channels.append(state)
            self._schedule_pump(0)

        channel.confirm_delivery(ack_nack_callback=lambda frame: self._on_confirm(state, frame),
                                 callback=ready)

    def _on_channel_closed(self, channel: Any, reason: Exception) -> None:
        if self._connection is not None and self._connection.is_open:
            if not self._finished():
                log.warning("RabbitMQ channel closed: %r", reason)
            self._connection.close()

    def _requeue_in_flight(self) -> None:
        # Every message sent but not confirmed goes back in publish order, ahead of new ones.
        waiting = set(self._resend)
        in_flight = [seq for seq, pending in self._pending.items()
                     if not pending.done and seq not in waiting]
        self._resend = deque(sorted([*self._resend, *in_flight]))
        self._channels = []

    # -- publishing ----------------------------------------------------------
    def _finished(self) -> bool:
        return (self._exhausted or self._stopping) and not self._pending

    def _schedule_pump(self, delay: float) -> None:
        due = time.monotonic() + delay
        if self._connection is None or (self._pump_due is not None and self._pump_due <= due):
            return
        # An earlier pump supersedes a later one; the later timer then finds nothing to do.
        self._pump_due = due
        self._connection.ioloop.call_later(delay, self._pump)

    def _pump(self) -> None:
        self._pump_due = None  # a superseded timer just runs one harmless extra pump
        if not self._channels:
            return
        if self._connection is None or not self._connection.is_open:
            return  # a timer left over from before close(); closing twice raises
        if self._finished():
            self._connection.close()
            return
        budget = min(self._window - self._in_flight(), PUMP_CHUNK)
        while budget > 0 and self._resend:
            seq = self._resend.popleft()
            pending = self._pending.get(seq)
            if pending is not None and not pending.done:
                self._send(seq, pending.message)
                self.stats.republished += 1
                budget -= 1
        wait: float | None = None
        if budget > 0 and not self._exhausted and not self._stopping:
            taken = self._source.take(budget, time.monotonic())
            if taken is None:
                self._exhausted = True
            elif isinstance(taken, float | int):
                wait = max(float(taken), 0.0)
            else:
                for message in taken:
                    seq = self._next_seq
                    self._next_seq += 1
                    self._pending[seq] = _Pending(message)
                    self._send(seq, message)
        if self._finished():
            self._connection.close()
        elif self._in_flight() < self._window and (self._resend or wait is None) and not (
                self._exhausted or self._stopping):
            self._schedule_pump(0)
        else:
            # Window full, source idle or only confirms outstanding: acks or the timer wake us.
            self._schedule_pump(min(wait if wait is not None else IDLE_RECHECK, IDLE_RECHECK))

    def _in_flight(self) -> int:
        return sum(len(state.tags) for state in self._channels)

    def _send(self, seq: int, message: Outgoing) -> None:
        # Round-robin over channels: each is its own broker process, so the
        # broker routes and confirms on more than one core.
        self._turn = (self._turn + 1) % len(self._channels)
        state = self._channels[self._turn]
        properties = pika.BasicProperties(
            content_type="application/json", delivery_mode=topology.PERSISTENT,
            message_id=f"{self._id_prefix}-{seq}",
            headers={topology.PUBLISHED_AT_HEADER: topology.published_at_stamp(time.time())})
        state.channel.basic_publish(topology.CLICKS_EXCHANGE, "", message.body, properties)
        state.tags[state.next_tag] = seq
        state.next_tag += 1

    def _on_confirm(self, state: _Channel, frame: Any) -> None:
        method = frame.method
        tag, multiple = method.delivery_tag, method.multiple
        if multiple:
            seqs = []
            while state.tags:
                first = next(iter(state.tags))
                if first > tag:
                    break
                seqs.append(state.tags.pop(first))
        else:
            seq = state.tags.pop(tag, None)
            seqs = [] if seq is None else [seq]
        if isinstance(method, Basic.Ack):
            for seq in seqs:
                self._pending[seq].done = True
            self._release_prefix()
        else:
            log.warning("broker nacked %d messages; republishing them", len(seqs))
            self._resend.extend(seqs)
        self._schedule_pump(0)

    def _release_prefix(self) -> None:
        released: list[Outgoing] = []
        while self._pending:
            seq, pending = next(iter(self._pending.items()))
            if not pending.done:
                break
            del self._pending[seq]
            released.append(pending.message)
        if released:
            self.stats.messages += len(released)
            self.stats.clicks += sum(message.clicks for message in released)
            self._source.confirmed(released)
            if self._on_progress is not None:
                self._on_progress(self.stats)
