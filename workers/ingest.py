"""``farloom ingest``: consume click messages into raw.ad_clicks and the Redis per-minute sets.

Per delivery: decode and validate (messages.decode_message) → add to the batch
(batching.Batcher, which drops repeated click ids). Per flush, on size, on age
and always on shutdown: the main thread publishes the batch's dead letters with
confirms and hands the distinct clicks to a writer thread (durable_write: one
PostgreSQL transaction with its Redis outbox, then the idempotent Redis apply).
Up to ``ingest_writers`` batches are written at once, each writer on its own
connections, while the main thread keeps filling the next batch; acks go out
in delivery order, one ``basic_ack(last_tag, multiple=True)`` per batch.

Ack rules:
- A message is acked only after its valid clicks are committed in PostgreSQL
  and applied in Redis, its dead letters are confirmed by the broker, and
  every earlier batch has been acked (a multiple ack covers them all).
- A lost PostgreSQL or Redis connection is retried with capped exponential
  backoff on the writer thread, then the outbox is drained before the batch is
  written again; the batch stays unacked meanwhile.
- A lost broker connection discards the unflushed batch and forgets the
  batches being written (the broker redelivers them all; click ids deduplicate
  what was already stored) and reconnects with backoff.
- Invalid input is dead-lettered element by element and never retried; a batch
  PostgreSQL refuses as data (a gap in validation) is written click by click so
  that only the refused clicks are dead-lettered ("unstorable"). Any other
  unexpected error ends the worker without acking: a bug must not ack data.
- SIGTERM or SIGINT flushes and acks the current batch, then exits 0.

Why concurrent writers are still exact: two batches in flight are two
transactions like those of two workers side by side. Each inserts its click
ids in sorted order with ``ON CONFLICT DO NOTHING``, so a click id in both is
stored once (the later transaction waits for the earlier and skips it) and the
two can never deadlock; only the one that stored a click carries its Redis
increment in its outbox row.

Threads: pika's connection is not thread-safe, so the main thread owns it and
keeps calling ``process_data_events`` while writes run (pika's guidance for
long work: heartbeats keep flowing, and deliveries fill the next batch). Each
writer thread alone owns its PostgreSQL and Redis connections.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import logging
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import orjson
import pika.exceptions
import psycopg2
import psycopg2.errors

from farloom_tasks import failpoints
from farloom_tasks.core.batching import Batch, Batcher, prefetch_for
from farloom_tasks.core.clicks import Click, Rejection
from farloom_tasks.core.messages import DeadLetter, decode_message
from farloom_tasks.errors import (
    BrokerUnavailable,
    ConfigError,
    DatabaseUnavailable,
    FarloomError,
    RedisUnavailable,
    TransientError,
)
from farloom_tasks.metrics import ingest as metrics
from farloom_tasks.pipeline.durable_write import DurableWriter, drain_outbox
from farloom_tasks.settings import Settings
from farloom_tasks.stores import db, redis_counts, topology
from farloom_tasks.stores.dead_letters import DeadLetterPublisher
from farloom_tasks.stores.raw import RawStore

log = logging.getLogger("farloom.ingest")
# pika logs every failed connect at ERROR with a traceback; the worker's own warning
# already names the error and the retry.
logging.getLogger("pika").setLevel(logging.CRITICAL)
T = TypeVar("T")

INITIAL_BACKOFF_SECONDS = 0.1
MAX_BACKOFF_SECONDS = 10.0
POLL_SECONDS = 0.5  # s an idle worker waits on the socket before looking at its flags
RETRIES_AFTER_STOP = 3  # attempts a stopping worker still makes to write its last batch
STARTING_PREFETCH = 200  # messages, until the first batch shows their size
PREFETCH_SMOOTHING = 0.3  # weight of the newest batch in the clicks-per-message average
PREFETCH_HYSTERESIS = 0.25  # relative change of the ideal prefetch that triggers basic.qos
# A bad deploy (a producer or a validation change) would dead-letter everything;
# such a batch is reported loudly, at most once per ALARM_SECONDS.
INVALID_SHARE_ALARM = 0.9
INVALID_ALARM_MIN_ITEMS = 100
ALARM_SECONDS = 60.0
# What PostgreSQL says about a value it will not store. A missing table or a lost
# permission is not the data's fault: the worker stops instead (nothing acked).
REFUSED_AS_DATA = (psycopg2.DataError, psycopg2.IntegrityError)
# The broker will not let this user in: retrying cannot help.
_REFUSED = (pika.exceptions.ProbableAccessDeniedError,
            pika.exceptions.ProbableAuthenticationError)


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.description = (
        "Consume click messages from the queue farloom.clicks.ingest into raw.ad_clicks "
        "and the per-minute Redis sets, exactly once: every click id is stored and counted "
        "once however often it is delivered. Invalid clicks go to farloom.clicks.dead with "
        "their reason. Safe to run several side by side. SIGTERM flushes, acks and exits 0."
    )
    parser.add_argument("--burst", action="store_true",
                        help="drain the queue, then exit and print a JSON summary line "
                             "(messages, clicks, duplicates, dead letters, late clicks, "
                             "clicks_per_s, publish-to-durable latency, peak RSS)")
    parser.add_argument("--idle-seconds", type=float, default=1.0, metavar="S",
                        help="with --burst: exit after S seconds without a delivery once the "
                             "queue is empty (default: 1.0)")
    parser.add_argument("--stats-file", type=Path, default=None, metavar="PATH",
                        help="on exit, also write the JSON summary to PATH")


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        failpoints.arm(settings.failpoints)
    except ValueError as exc:
        raise ConfigError(f"FARLOOM_FAILPOINTS: {exc}") from None
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: flushing the current batch, then exiting", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        metrics.serve(settings.metrics_port)
    except OSError as exc:
        log.warning("metrics are off: port %d: %s", settings.metrics_port, exc)
    worker = IngestWorker(settings, stop, burst=bool(args.burst),
                          idle_seconds=float(args.idle_seconds))
    try:
        code = worker.run()
    except psycopg2.errors.UndefinedTable as exc:
        print(f"farloom ingest: {str(exc).splitlines()[0]}; is the database migrated? "
              "Run: farloom migrate", file=sys.stderr)
        return 2
    finally:
        worker.close()
    line = orjson.dumps(worker.stats.summary(time.time())).decode("utf-8")
    if args.burst:
        print(line, flush=True)
    if args.stats_file is not None:
        args.stats_file.write_text(line + "\n", encoding="utf-8")
    return code


def backoff_delay(attempt: int) -> float:
    """Capped exponential backoff with jitter, so that restarted workers do not stampede."""
    ceiling = min(MAX_BACKOFF_SECONDS, INITIAL_BACKOFF_SECONDS * 2.0 ** min(attempt, 20))
    return float(ceiling * random.uniform(0.5, 1.0))


class Abandoned(FarloomError):
    """A stopping worker gave up on a store that stayed unavailable; nothing was acked."""


def _service(exc: TransientError) -> str:
    if isinstance(exc, DatabaseUnavailable):
        return "postgresql"
    if isinstance(exc, RedisUnavailable):
        return "redis"
    return "rabbitmq" if isinstance(exc, BrokerUnavailable) else "other"


@dataclasses.dataclass
class Written:
    new_clicks: int = 0
    duplicates: int = 0
    late_clicks: int = 0
    refused: list[DeadLetter] = dataclasses.field(default_factory=list)


class DurableSink:
    """The writer thread's side: PostgreSQL and Redis, retried until they answer."""

    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self.stop = stop
        self.engine = db.make_engine(settings.database_url, pool_size=1)
        self.raw = RawStore(self.engine, settings.shard_count)
        self.counts = redis_counts.RedisCounts(redis_counts.connect(settings.redis_url),
                                               settings.redis_retention_seconds)
        self.writer = DurableWriter(self.raw, self.counts)
        self.cleanup_due = False  # outbox rows applied to Redis but not yet deleted
        self._must_drain = True

    def _retrying(self, work: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                if self._must_drain:
                    # Whatever a crash or the last failure left in the outbox reaches
                    # Redis before anything else is acked.
                    drained = drain_outbox(self.raw, self.counts)
                    if drained:
                        log.info("applied %d pending outbox rows to Redis", drained)
                    self._must_drain = False
                return work()
            except TransientError as exc:
                self._must_drain = True
                metrics.TRANSIENT_ERRORS.labels(_service(exc)).inc()
                if self.stop.is_set() and attempt >= RETRIES_AFTER_STOP:
                    raise Abandoned(f"stopping while {exc}") from exc
                delay = backoff_delay(attempt)
                log.warning("%s; retrying in %.1f s", exc, delay)
                time.sleep(delay)
                attempt += 1
            except BaseException:
                # A commit may have succeeded before Redis failed: drain before the next write.
                self._must_drain = True
                raise

    def recover(self) -> None:
        self._must_drain = True
        self._retrying(lambda: None)

    def write(self, clicks: Sequence[Click]) -> Written:
        def attempt() -> Written:
            failpoints.reach("before_commit")
            batch = self.writer.write(clicks)
            return Written(batch.new_clicks, batch.duplicates, batch.late_clicks)

        written = self._retrying(attempt)
        self.cleanup_due = True
        return written

    def write_one_by_one(self, clicks: Sequence[Click]) -> Written:
        """Isolate the clicks PostgreSQL refuses as data; store every other one."""
        total = Written()
        for click in clicks:
            try:
                one = self.write([click])
            except REFUSED_AS_DATA as exc:  # dead-letter it, never retry it
                body = orjson.dumps(dataclasses.asdict(click))
                total.refused.append(DeadLetter(body, Rejection("unstorable", str(exc)[:500])))
                continue
            total.new_clicks += one.new_clicks
            total.duplicates += one.duplicates
            total.late_clicks += one.late_clicks
        return total

    def cleanup(self) -> None:
        self._retrying(self.writer.flush_cleanup)
        self.cleanup_due = False

    def close(self) -> None:
        self.raw.close()
        self.engine.dispose()
        self.counts.client.close()


def _noop() -> None:
    return None


@dataclasses.dataclass(frozen=True)
class Writer:
    """A writer thread and the sink (connections) only it uses."""

    sink: DurableSink
    executor: ThreadPoolExecutor


@dataclasses.dataclass
class InFlight:
    """A batch being written; it is acked once it and every earlier batch are done."""

    batch: Batch
    writer: Writer
    started: float
    future: Future[Written] | None = None  # None: the batch holds only dead letters


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
        # One sink per writer thread: a sink's connections are used by its thread only.
        self.writers = [
            Writer(DurableSink(settings, stop),
                   ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ingest-writer-{n}"))
            for n in range(settings.ingest_writers)]
        self._idle_writers: collections.deque[Writer] = collections.deque(self.writers)
        self._in_flight: collections.deque[InFlight] = collections.deque()  # oldest first
        self._last_delivery_at = time.time()
        self._last_alarm_at = 0.0
        self._prefetch = settings.prefetch_count  # messages, as last sent with basic.qos
        self._consumer_tag: str | None = None  # while consuming
        self._clicks_per_message: float | None = None  # running average, once a batch is seen

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
                dropped = self.batcher.discard() + sum(e.batch.messages for e in self._in_flight)
                metrics.TRANSIENT_ERRORS.labels("rabbitmq").inc()
                if self.stop.is_set():
                    log.warning("stopping without a broker: %s; %d unacked messages will be "
                                "redelivered", exc, dropped)
                    return 1
                delay = backoff_delay(attempt)
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
        for writer in self.writers:
            try:
                if writer.sink.cleanup_due:
                    writer.executor.submit(writer.sink.cleanup).result(timeout=60)
            except Exception as exc:  # the rows stay; any drain deletes them later
                log.warning("could not delete applied outbox rows: %s", exc)
            finally:
                writer.executor.shutdown(wait=True)
                writer.sink.close()

    def _consume(self, connection: Any) -> int:
        self._forget_in_flight()  # a new connection: the old delivery tags mean nothing
        with topology.translated_errors():
            channel = connection.channel()
        topology.declare(channel)
        # Until a batch shows how many clicks a message holds, a small window: a full
        # one of 100-click messages would be over a million clicks in memory at once.
        self._prefetch = self.stats.prefetch = min(STARTING_PREFETCH,
                                                   self.settings.prefetch_count)
        with topology.translated_errors():
            channel.basic_qos(prefetch_count=self._prefetch)
        dead = DeadLetterPublisher(connection, topology.INGEST_QUEUE)
        first = self.writers[0]
        self._await(connection, self._submit(connection, first, first.sink.recover))
        with topology.translated_errors():
            self._consumer_tag = channel.basic_consume(topology.INGEST_QUEUE, self._on_message)
        log.info("consuming %s (batch %d clicks or %.2f s, prefetch up to %d, %d writers)",
                 topology.INGEST_QUEUE, self.settings.batch_size,
                 self.settings.flush_interval_seconds, self.settings.prefetch_count,
                 len(self.writers))
        self._last_delivery_at = time.time()
        while True:
            self._ack_finished(connection, channel, dead)
            if self.stop.is_set():
                with topology.translated_errors():
                    channel.basic_cancel(self._consumer_tag)
                self._consumer_tag = None
                self._wait_for_a_writer(connection, channel, dead)
                self._start_write(connection, dead)
                while self._in_flight:
                    self._wait_for_oldest(connection)
                    self._ack_finished(connection, channel, dead)
                return 0
            now = time.time()
            if self._idle_writers and self.batcher.should_flush(
                    now, more_can_arrive=self._window_has_room()):
                self._start_write(connection, dead)
                continue
            due = self.batcher.seconds_until_due(now)
            if due is None or not self._idle_writers:
                # Nothing due, or every writer busy: a finishing write ends this wait
                # early (the callback in _submit), and so does a delivery.
                due = POLL_SECONDS
            with topology.translated_errors():
                connection.process_data_events(time_limit=due)
            if (not self._in_flight and len(self.batcher) == 0
                    and time.time() - self._last_delivery_at >= self._idle_after):
                for writer in self.writers:
                    if writer.sink.cleanup_due:
                        self._await(connection,
                                    self._submit(connection, writer, writer.sink.cleanup))
                if self.burst and topology.queue_depth(channel, topology.INGEST_QUEUE) == 0:
                    return 0
                self._last_delivery_at = time.time()

    def _window_has_room(self) -> bool:
        """False when the broker can send nothing more before an ack (prefetch is full)."""
        unacked = len(self.batcher) + sum(e.batch.messages for e in self._in_flight)
        return unacked < self._prefetch

    @property
    def _idle_after(self) -> float:
        return self.idle_seconds if self.burst else max(1.0, self.idle_seconds)

    def _on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        now = time.time()
        decoded = decode_message(body, now=now, max_skew=self.settings.max_clock_skew_seconds,
                                 max_bytes=self.settings.max_message_bytes)
        published_at = topology.published_at(properties.headers)
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
        """Hand the current batch to an idle writer; its ack waits in ``_in_flight``."""
        batch = self.batcher.take()
        if batch.messages == 0:
            return
        writer = self._idle_writers.popleft()
        entry = InFlight(batch, writer, started=time.time())
        self._in_flight.append(entry)
        if batch.clicks_received:
            entry.future = self._submit(connection, writer, writer.sink.write, batch.clicks)
        if batch.dead_letters:
            dead.publish(batch.dead_letters)  # while the write runs

    def _submit(self, connection: Any, writer: Writer, work: Callable[..., T],
                *args: Any) -> Future[T]:
        future = writer.executor.submit(work, *args)

        def wake(_: Future[T]) -> None:
            # Ends the main thread's process_data_events early so that the result is
            # used at once; if the connection is gone, nobody is waiting on it.
            with contextlib.suppress(Exception):
                connection.add_callback_threadsafe(_noop)

        future.add_done_callback(wake)
        return future

    def _wait_for_oldest(self, connection: Any) -> None:
        future = self._in_flight[0].future
        if future is not None:
            self._serve_until_done(connection, future)

    def _wait_for_a_writer(self, connection: Any, channel: Any,
                           dead: DeadLetterPublisher) -> None:
        while not self._idle_writers:
            self._wait_for_oldest(connection)
            self._ack_finished(connection, channel, dead)

    def _ack_finished(self, connection: Any, channel: Any, dead: DeadLetterPublisher) -> None:
        """Ack the finished writes at the head of ``_in_flight``, oldest first.

        A later batch that finished first waits for the earlier ones: a multiple
        ack covers every earlier delivery tag.
        """
        while self._in_flight:
            entry = self._in_flight[0]
            written = Written()
            if entry.future is not None:
                if not entry.future.done():
                    return
                try:
                    written = entry.future.result()
                except REFUSED_AS_DATA:
                    log.exception("PostgreSQL refused a batch of %d clicks as data; writing "
                                  "them one by one to dead-letter only the refused ones",
                                  entry.batch.distinct_clicks)
                    entry.future = self._submit(connection, entry.writer,
                                                entry.writer.sink.write_one_by_one,
                                                entry.batch.clicks)
                    return
                if written.refused:
                    dead.publish(written.refused)
            failpoints.reach("after_redis")
            with topology.translated_errors():
                channel.basic_ack(delivery_tag=entry.batch.last_delivery_tag, multiple=True)
            failpoints.reach("after_ack")
            self._in_flight.popleft()
            self._idle_writers.append(entry.writer)
            self._record(entry.batch, written, entry.started, time.time())
            self._resize_prefetch(channel, entry.batch)

    def _forget_in_flight(self) -> None:
        """After a lost channel: the broker redelivers every unacked batch.

        The writes go on (a stored click is a duplicate when it comes back); each
        writer is free again once its write has ended, so a reconnected worker
        never has two writes on one sink's connections.
        """
        for entry in self._in_flight:
            if entry.future is not None:
                with contextlib.suppress(Exception):
                    entry.future.exception()  # wait for it; the outcome no longer matters
            self._idle_writers.append(entry.writer)
        self._in_flight.clear()

    def _resize_prefetch(self, channel: Any, batch: Batch) -> None:
        """Follow the clicks per message seen (batching.prefetch_for) to bound memory.

        The window is per consumer: a channel-wide window (``global_qos``) cost
        RabbitMQ 3.5 us more CPU per delivered one-click message here (26.2-27.7
        against 22.1-24.5 us, four drains of 100,000 each), a seventh of its work.
        RabbitMQ applies a new per-consumer prefetch only to consumers created
        after it, so a resize re-subscribes (``_resubscribe``); with the hysteresis
        below that happens once when a worker starts and again only when the
        producers' message size changes.
        """
        items = batch.clicks_received + len(batch.dead_letters)
        # An exponential average, so one odd batch does not swing the window.
        seen = items / batch.messages
        average = self._clicks_per_message
        self._clicks_per_message = average = (
            seen if average is None else average + PREFETCH_SMOOTHING * (seen - average))
        wanted = prefetch_for(average, self.settings.batch_size,
                              self.settings.prefetch_count)
        # basic.qos is a round trip: change it only when the window is well off.
        if abs(wanted - self._prefetch) > PREFETCH_HYSTERESIS * self._prefetch:
            with topology.translated_errors():
                channel.basic_qos(prefetch_count=wanted)
            log.info("prefetch %d -> %d messages (%.1f clicks per message)",
                     self._prefetch, wanted, self._clicks_per_message)
            self._prefetch = self.stats.prefetch = wanted
            self.stats.prefetch_changes += 1
            self._resubscribe(channel)

    def _resubscribe(self, channel: Any) -> None:
        """Replace the consumer, so that the window last set with basic.qos applies.

        Deliveries already handed to ``_on_message`` stay unacked on this channel
        and are acked with their batch. pika rejects with requeue whatever arrived
        for the old consumer but was not yet dispatched: nothing of it was batched,
        and the broker delivers it again, to this worker or another.
        """
        if self._consumer_tag is None:  # stopping: no new consumer
            return
        with topology.translated_errors():
            channel.basic_cancel(self._consumer_tag)
            self._consumer_tag = channel.basic_consume(topology.INGEST_QUEUE, self._on_message)

    def _record(self, batch: Batch, written: Written, started: float, acked: float) -> None:
        stats = self.stats
        stats.messages += batch.messages
        stats.batches += 1
        stats.clicks_received += batch.clicks_received
        stats.clicks_stored += written.new_clicks
        duplicates = batch.duplicates_in_batch + written.duplicates
        stats.duplicates += duplicates
        dead_letters = batch.dead_letters + written.refused
        stats.dead_letters += len(dead_letters)
        stats.late_clicks += written.late_clicks
        stats.last_ack_at = acked
        metrics.MESSAGES.inc(batch.messages)
        metrics.CLICKS_STORED.inc(written.new_clicks)
        metrics.DUPLICATES.inc(duplicates)
        metrics.LATE_CLICKS.inc(written.late_clicks)
        metrics.BATCH_CLICKS.observe(batch.distinct_clicks)
        metrics.FLUSH_SECONDS.observe(acked - started)
        for code, n in collections.Counter(d.rejection.code for d in dead_letters).items():
            metrics.DEAD_LETTERS.labels(code).inc(n)
        metrics.observe_latencies(stats, acked, batch.published_at)
        items = batch.clicks_received + len(batch.dead_letters)
        if (items >= INVALID_ALARM_MIN_ITEMS
                and len(batch.dead_letters) >= INVALID_SHARE_ALARM * items
                and acked - self._last_alarm_at >= ALARM_SECONDS):
            self._last_alarm_at = acked
            top = collections.Counter(d.rejection.code for d in batch.dead_letters)
            log.error("%d of %d clicks in one batch were invalid (%s): is a producer or a "
                      "validation rule broken?", len(batch.dead_letters), items,
                      ", ".join(f"{c}={n}" for c, n in top.most_common(3)))
