"""The ingest worker's consume loop: clicks from ``farloom.clicks.ingest`` into raw and Redis.

Per delivery: decode and validate (messages.decode_message) → add to the batch
(batching.Batcher, which drops repeated click ids). Per flush, on size, on age
and always on shutdown: the main thread hands the distinct clicks to an idle
writer thread (pipeline.ingest_sink: one PostgreSQL transaction with its Redis
outbox, then the idempotent Redis apply) and publishes the batch's dead letters
with confirms while the write runs. Up to ``ingest_writers`` batches are
written at once, each writer on its own connections, while the main thread
keeps filling the next batch; pipeline.in_order_acks acks them in delivery
order. The ack and failure rules live with the code they describe (those two
modules) and in docs/design.md; the loop adds these:

- A lost broker connection discards the unflushed batch and forgets the
  batches being written (the broker redelivers them all; click ids deduplicate
  what was already stored) and reconnects with backoff.
- Invalid input is dead-lettered element by element and never retried. Any
  other unexpected error ends the worker without acking: a bug must not ack data.
- SIGTERM or SIGINT flushes and acks the current batch, then exits 0.

Threads: pika's connection is not thread-safe, so the main thread owns it and
keeps calling ``process_data_events`` while writes run (pika's guidance for
long work: heartbeats keep flowing, and deliveries fill the next batch). Each
writer thread alone owns its sink's PostgreSQL and Redis connections.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pika.exceptions

from farloom_tasks import failpoints, processes
from farloom_tasks.core.batching import Batcher
from farloom_tasks.core.message_identity import source_identity
from farloom_tasks.core.messages import decode_message
from farloom_tasks.core.partitions import HOUR, acceptance_floor
from farloom_tasks.errors import BrokerUnavailable, ConfigError
from farloom_tasks.metrics import ingest as metrics
from farloom_tasks.metrics.bad_deploy import BadDeployAlarm
from farloom_tasks.pipeline.in_order_acks import InFlight, InOrderAcks
from farloom_tasks.pipeline.ingest_sink import RETRY_BACKOFF, Abandoned, Written
from farloom_tasks.pipeline.ingest_writers import Writer, close_writers, start_writers
from farloom_tasks.settings import Settings
from farloom_tasks.stores import raw, topology
from farloom_tasks.stores.dead_letters import DeadLetterPublisher
from farloom_tasks.stores.ingest_consumer import Subscription

log = logging.getLogger("farloom.ingest")
# pika logs every failed connect at ERROR with a traceback; the worker's own warning
# already names the error and the retry.
logging.getLogger("pika").setLevel(logging.CRITICAL)
T = TypeVar("T")

POLL_SECONDS = 0.5  # s an idle worker waits on the socket before looking at its flags
# The broker will not let this user in: retrying cannot help.
_REFUSED = (pika.exceptions.ProbableAccessDeniedError,
            pika.exceptions.ProbableAuthenticationError)


@dataclasses.dataclass(frozen=True)
class IngestOptions:
    """How one ``farloom ingest`` run behaves (its flags)."""

    burst: bool = False  # drain the queue, then exit and print the summary line
    idle_seconds: float = 1.0  # s without a delivery, queue empty, before a burst ends
    stats_file: Path | None = None  # also write the summary line here on exit


def run(options: IngestOptions, settings: Settings) -> int:
    """Run one worker until SIGTERM/SIGINT (or the end of a burst); the process's exit code."""
    try:
        failpoints.arm(settings.failpoints)
    except ValueError as exc:
        raise ConfigError(f"FARLOOM_FAILPOINTS: {exc}") from None
    stop = threading.Event()

    def request_stop(signum: int) -> None:
        log.info("signal %d: flushing the current batch, then exiting", signum)
        stop.set()

    processes.on_stop_signals(request_stop)
    try:
        metrics.serve(settings.metrics_port)
    except OSError as exc:
        log.warning("metrics are off: port %d: %s", settings.metrics_port, exc)
    worker = IngestWorker(settings, stop, burst=options.burst,
                          idle_seconds=options.idle_seconds)
    try:
        code = worker.run()
    except raw.NotMigrated as exc:
        print(f"farloom ingest: {str(exc).splitlines()[0]}; is the database migrated? "
              "Run: farloom migrate", file=sys.stderr)
        return 2
    finally:
        worker.close()
    line = orjson.dumps(worker.stats.summary(time.time())).decode("utf-8")
    if options.burst:
        print(line, flush=True)
    if options.stats_file is not None:
        options.stats_file.write_text(line + "\n", encoding="utf-8")
    return code


def _noop() -> None:
    return None


class _TranslatedAcks:
    """The channel as in_order_acks sees it: pika's errors become BrokerUnavailable."""

    def __init__(self, channel: Any) -> None:
        self._channel = channel

    def basic_ack(self, delivery_tag: int, multiple: bool) -> None:
        with topology.translated_errors():
            self._channel.basic_ack(delivery_tag=delivery_tag, multiple=multiple)


class IngestWorker:
    """One consumer of ``farloom.clicks.ingest``; run it as many times as you like."""

    def __init__(self, settings: Settings, stop: threading.Event, *, burst: bool = False,
                 idle_seconds: float = 1.0) -> None:
        self.settings = settings
        self.stop = stop
        self.burst = burst
        self.idle_seconds = idle_seconds
        self.stats = metrics.IngestStats(started_at=time.time())
        self.batcher = Batcher(settings.batch_size, settings.flush_interval_seconds)
        self.writers = start_writers(settings, stop)
        self.acks: InOrderAcks[Writer] = InOrderAcks(self.writers)
        self.subscription = Subscription(settings.batch_size, settings.prefetch_count,
                                         self._on_message, self.stats)
        self.alarm = BadDeployAlarm()
        self._last_delivery_at = time.time()

    def run(self) -> int:
        """Consume until stopped (or, with ``burst``, until the queue is empty)."""
        attempt = 0
        while True:
            connection: Any = None
            try:
                connection = topology.connect(self.settings.amqp_url, role="ingest")
                return self._consume(connection)
            except BrokerUnavailable as exc:
                if isinstance(exc.__cause__, _REFUSED):
                    raise ConfigError(f"{exc}; check the user, password and vhost in "
                                      "FARLOOM_AMQP_URL") from exc
                dropped = self.batcher.discard() + self.acks.messages
                metrics.TRANSIENT_ERRORS.labels("rabbitmq").inc()
                if self.stop.is_set():
                    log.warning("stopping without a broker: %s; %d unacked messages will be "
                                "redelivered", exc, dropped)
                    return 1
                delay = RETRY_BACKOFF.delay(attempt, random.uniform(0.5, 1.0))
                attempt += 1
                log.warning("%s; %d unacked messages will be redelivered; reconnecting in "
                            "%.1f s", exc, dropped, delay)
                self.stop.wait(delay)
            except Abandoned as exc:
                log.error("%s; the unacked messages will be redelivered", exc)
                return 1
            finally:
                if connection is not None and connection.is_open:
                    with contextlib.suppress(Exception):
                        connection.close()

    def close(self) -> None:
        close_writers(self.writers)

    def _consume(self, connection: Any) -> int:
        self.acks.forget()  # a new connection: the old delivery tags mean nothing
        with topology.translated_errors():
            channel = connection.channel()
        topology.declare(channel, topology.QueueType.of(self.settings))
        self.subscription.limit(channel)
        dead = DeadLetterPublisher(connection, topology.INGEST_QUEUE)
        first = self.writers[0]
        self._await(connection, self._submit(connection, first, first.sink.recover))
        self.subscription.consume()
        log.info("consuming %s (batch %d clicks or %.2f s, prefetch up to %d, %d writers)",
                 topology.INGEST_QUEUE, self.settings.batch_size,
                 self.settings.flush_interval_seconds, self.settings.prefetch_count,
                 len(self.writers))
        self._last_delivery_at = time.time()
        while True:
            self._ack_finished(connection, channel, dead)
            if self.stop.is_set():
                self.subscription.cancel()
                while not self.acks.idle:  # wait for a writer
                    self._wait_for_oldest(connection)
                    self._ack_finished(connection, channel, dead)
                self._start_write(connection, dead)
                while self.acks:
                    self._wait_for_oldest(connection)
                    self._ack_finished(connection, channel, dead)
                return 0
            now = time.time()
            if self.acks.idle and self.batcher.should_flush(
                    now, more_can_arrive=self._window_has_room()):
                self._start_write(connection, dead)
                continue
            due = self.batcher.seconds_until_due(now)
            if due is None or not self.acks.idle:
                # Nothing due, or every writer busy: a finishing write ends this wait
                # early (the callback in _submit), and so does a delivery.
                due = POLL_SECONDS
            with topology.translated_errors():
                connection.process_data_events(time_limit=due)
            if (not self.acks and len(self.batcher) == 0
                    and time.time() - self._last_delivery_at >= self._idle_after):
                for writer in self.writers:
                    if writer.sink.cleanup_due:
                        self._await(connection,
                                    self._submit(connection, writer, writer.sink.cleanup))
                if self.burst and self._drained(channel):
                    return 0
                self._last_delivery_at = time.time()

    def _drained(self, channel: Any) -> bool:
        """The end of a burst: nothing ready in the queue, and nothing on its way here.

        A ready count of 0 alone does not say that: a message the broker has sent
        but this process has not read yet (a large one, a busy moment) counts as
        unacked, not ready. Cancelling settles it: pika requeues (nacks) whatever
        reaches a cancelled consumer before CancelOk, so afterwards such a message
        is ready in the queue again, and the burst subscribes again to take it.
        """
        if topology.queue_depth(channel, topology.INGEST_QUEUE) != 0:
            return False
        self.subscription.cancel()
        if len(self.batcher) == 0 and topology.queue_depth(channel, topology.INGEST_QUEUE) == 0:
            return True
        self.subscription.consume()
        return False

    def _window_has_room(self) -> bool:
        """False when the broker can send nothing more before an ack (prefetch is full)."""
        return len(self.batcher) + self.acks.messages < self.subscription.prefetch

    @property
    def _idle_after(self) -> float:
        return self.idle_seconds if self.burst else max(1.0, self.idle_seconds)

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        now = time.time()
        settings = self.settings
        # Per message, from the clock: a click raw retention drops soon is refused now.
        earliest = acceptance_floor(now, settings.raw_retention_days,
                                    settings.raw_partition_hours * HOUR)
        decoded = decode_message(body, now=now, max_skew=settings.max_clock_skew_seconds,
                                 max_bytes=settings.max_message_bytes, earliest=earliest)
        published_at = topology.published_at(properties.headers)
        if decoded.dead_letters:
            # Only a message with rejected elements pays for its identity (a hash).
            source_id = source_identity(
                properties.message_id, properties.timestamp,
                (properties.headers or {}).get(topology.PUBLISHED_AT_HEADER), body)
            decoded.dead_letters = [dataclasses.replace(letter, source_id=source_id)
                                    for letter in decoded.dead_letters]
        self.batcher.add(method.delivery_tag, decoded, published_at, now)
        self._last_delivery_at = now
        if self.stats.first_delivery_at is None:
            self.stats.first_delivery_at = now

    def _await(self, connection: Any, future: Future[T]) -> T:
        """Wait for a writer's future (from ``_submit``) while serving the broker connection."""
        self._serve_until_done(connection, future)
        return future.result()

    @staticmethod
    def _serve_until_done(connection: Any, future: Future[Any]) -> None:
        # The future's done callback (``_submit``) ends each wait early.
        while not future.done():
            with topology.translated_errors():
                connection.process_data_events(time_limit=POLL_SECONDS)

    def _start_write(self, connection: Any, dead: DeadLetterPublisher) -> None:
        """Hand the current batch to an idle writer; its ack waits in ``self.acks``."""
        batch = self.batcher.take()
        if batch.messages == 0:
            return
        entry = self.acks.start(batch, started=time.time())
        # A batch of rejected elements only is written too: its ledger rows are
        # durable before its ack.
        entry.future = self._submit(connection, entry.writer, entry.writer.sink.write,
                                    batch.clicks, batch.dead_letters)
        if batch.dead_letters:
            dead.publish(batch.dead_letters)  # while the write runs

    @staticmethod
    def _submit(connection: Any, writer: Writer, work: Callable[..., T],
                *args: Any) -> Future[T]:
        # The wake-up ends the main thread's process_data_events early, so that the
        # result is used at once.
        return writer.submit(work, *args,
                             wake=lambda: connection.add_callback_threadsafe(_noop))

    def _wait_for_oldest(self, connection: Any) -> None:
        future = self.acks.oldest_future()
        if future is not None:
            self._serve_until_done(connection, future)

    def _ack_finished(self, connection: Any, channel: Any, dead: DeadLetterPublisher) -> None:
        def rewrite(entry: InFlight[Writer]) -> Future[Written]:
            return self._submit(connection, entry.writer, entry.writer.sink.write_one_by_one,
                                entry.batch.clicks, entry.batch.dead_letters)

        def acked(entry: InFlight[Writer], written: Written) -> None:
            acked_at = time.time()
            metrics.record_batch(self.stats, entry.batch, new_clicks=written.new_clicks,
                                 duplicates=written.duplicates,
                                 late_clicks=written.late_clicks, refused=written.refused,
                                 started=entry.started, acked=acked_at)
            alarm = self.alarm.check(entry.batch, acked_at)
            if alarm is not None:
                log.error("%s", alarm)
            self.subscription.follow(entry.batch)

        self.acks.ack_finished(_TranslatedAcks(channel), dead, rewrite=rewrite, acked=acked)
