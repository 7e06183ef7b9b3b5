"""The aggregated writer's loop (``farloom write-aggregates``): minute results into ``agg.*``.

A pipeline of one message at a time: decode → check → write (one PostgreSQL
transaction, see farloom_tasks.stores.agg) → ack.

Ack rules:
- A part is acked only after its transaction committed (or after it was found
  stale, which is also a durable fact: the minute holds a newer result).
- Garbage (not the contract, too large, or refused by PostgreSQL as data) is
  published to ``farloom.aggregates.dead`` with its reason in the headers,
  waits for the broker's confirm, and only then is acked. It is never retried.
- A lost PostgreSQL connection is retried with backoff while the message stays
  unacked; a lost broker connection drops every unacked message back to the
  queue and the writer reconnects with backoff. Either way nothing unwritten
  is acked, and a redelivered part is harmless (idempotent writes).
- SIGTERM (or SIGINT) lets the current message finish, then exits 0.
  A burst run exits 0 once the queue is empty.
"""

from __future__ import annotations

import logging
import threading
import time

import pika
from pika.adapters.blocking_connection import BlockingConnection

from farloom_tasks import processes
from farloom_tasks.core import aggregates
from farloom_tasks.core.backoff import Backoff
from farloom_tasks.core.partitions import HOUR
from farloom_tasks.errors import BrokerUnavailable, DatabaseUnavailable
from farloom_tasks.metrics import writer as writer_metrics
from farloom_tasks.settings import Settings
from farloom_tasks.stores import db, topology
from farloom_tasks.stores.agg import AggStore, Outcome, check_writable
from farloom_tasks.stores.dead_letters import DeadLetterPublisher

log = logging.getLogger("farloom.aggregate_writer")

INITIAL_BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 10.0
# Plain doubling (no jitter) for both the broker reconnects and the PostgreSQL retries.
BACKOFF = Backoff(INITIAL_BACKOFF_SECONDS, MAX_BACKOFF_SECONDS)
POLL_SECONDS = 0.5  # how often an idle consumer looks at the stop flag and the queue depth


def run_writer(settings: Settings, *, burst: bool) -> int:
    """Run one writer process until SIGTERM/SIGINT (or, with ``burst``, an empty queue).

    Installs the signal handlers and serves the writer's metrics; returns the
    exit code (0).
    """
    stop = threading.Event()

    def request_stop(signum: int) -> None:
        log.info("signal %d: finishing the current message, then exiting", signum)
        stop.set()

    processes.on_stop_signals(request_stop)
    writer_metrics.serve(settings.metrics_port)
    engine = db.make_engine(settings.database_url, pool_size=1)
    store = AggStore(engine, settings.minute_partition_hours * HOUR)
    try:
        return AggregateWriter(settings, store, stop).run(burst=burst)
    finally:
        store.close()
        engine.dispose()


class AggregateWriter:
    """One single-threaded consumer of ``farloom.aggregates.writer``."""

    def __init__(self, settings: Settings, store: AggStore, stop: threading.Event) -> None:
        self.settings = settings
        self.store = store
        self.stop = stop
        self._connected = False  # since the last broker failure

    def run(self, *, burst: bool) -> int:
        failures = 0  # broker failures in a row
        while not self.stop.is_set():
            try:
                self._consume(burst=burst)
                return 0
            except BrokerUnavailable as exc:
                if self._connected:  # it worked for a while: start the backoff afresh
                    failures, self._connected = 0, False
                delay = BACKOFF.delay(failures)
                failures += 1
                writer_metrics.TRANSIENT_ERRORS.labels("rabbitmq").inc()
                log.warning("%s; unacked messages return to the queue; reconnecting in %.1f s",
                            exc, delay)
                self.stop.wait(delay)
        return 0

    def _consume(self, *, burst: bool) -> None:
        """Consume until stopped or (burst) drained; BrokerUnavailable means reconnect."""
        connection = topology.connect(self.settings.amqp_url, role="aggregated writer")
        try:
            with topology.translated_errors():
                channel = connection.channel()
                topology.declare(channel, topology.QueueType.of(self.settings))
                channel.basic_qos(prefetch_count=self.settings.aggregate_prefetch_count)
                dead = DeadLetterPublisher(connection, topology.AGGREGATES_QUEUE,
                                           exchange=topology.AGGREGATES_DEAD_EXCHANGE)
                self._connected = True
                log.info("consuming %s", topology.AGGREGATES_QUEUE)
                for method, properties, body in channel.consume(
                        topology.AGGREGATES_QUEUE, inactivity_timeout=POLL_SECONDS):
                    if method is None:
                        if self.stop.is_set() or (
                                burst and topology.queue_depth(
                                    dead.channel, topology.AGGREGATES_QUEUE) == 0):
                            break
                        continue
                    if not self._handle(connection, dead, properties, body):
                        break  # stopped while PostgreSQL was down: leave it unacked
                    channel.basic_ack(method.delivery_tag)
                    if self.stop.is_set():
                        break
                channel.cancel()
        finally:
            try:
                with topology.translated_errors():
                    connection.close()
            except BrokerUnavailable:
                pass  # already gone; the broker requeues whatever was unacked

    def _handle(self, connection: BlockingConnection, dead: DeadLetterPublisher,
                properties: pika.BasicProperties, body: bytes) -> bool:
        """Make one message durable or dead-lettered. False if stopped before that."""
        limit = self.settings.aggregate_max_message_bytes
        if len(body) > limit:
            self._dead_letter(dead, properties, body, "oversized",
                              f"message has {len(body)} bytes; the limit is {limit}")
            return True
        try:
            part = aggregates.decode(body)
            check_writable(part)
        except (aggregates.InvalidAggregate, ValueError, TypeError, OverflowError) as exc:
            self._dead_letter(dead, properties, body, "invalid_aggregate", str(exc))
            return True
        failures = 0  # PostgreSQL failures in a row for this message
        while True:
            started = time.perf_counter()
            try:
                outcome = self.store.write_part(part)
            except aggregates.InvalidAggregate as exc:
                self._dead_letter(dead, properties, body, "unwritable", str(exc))
                return True
            except DatabaseUnavailable as exc:
                writer_metrics.TRANSIENT_ERRORS.labels("postgresql").inc()
                if self.stop.is_set():
                    return False
                delay = BACKOFF.delay(failures)
                failures += 1
                log.warning("%s; retrying minute %s revision %d in %.1f s",
                            exc, part.minute, part.revision, delay)
                self._sleep(connection, delay)
                continue
            writer_metrics.WRITE_SECONDS.observe(time.perf_counter() - started)
            break
        self._count(outcome, part, properties)
        return True

    def _count(self, outcome: Outcome, part: aggregates.MinuteResultPart,
               properties: pika.BasicProperties) -> None:
        if outcome is Outcome.STALE:
            writer_metrics.STALE_SKIPPED.inc()
            log.debug("skipped minute %d revision %d part %d: a newer result is final",
                      part.minute, part.revision, part.part)
            return
        writer_metrics.MESSAGES_WRITTEN.inc()
        published_at = topology.published_at(properties.headers)
        if published_at is not None:
            writer_metrics.PUBLISH_TO_COMMIT_SECONDS.observe(max(0.0, time.time() - published_at))
        if outcome is Outcome.FINALISED:
            writer_metrics.REVISIONS_FINALISED.inc()
            log.info("minute %d revision %d final: %d clicks, %d ads",
                     part.minute, part.revision, part.clicks, part.distinct_ads)

    def _dead_letter(self, dead: DeadLetterPublisher, properties: pika.BasicProperties,
                     body: bytes, code: str, reason: str) -> None:
        """Dead-letter ``body`` (with its own content type) and wait for the broker's confirm."""
        dead.publish_one(body, code, reason, content_type=properties.content_type)
        writer_metrics.DEAD_LETTERS.labels(code).inc()
        log.warning("dead-lettered an aggregates message (%s): %s", code, reason[:200])

    def _sleep(self, connection: BlockingConnection, seconds: float) -> None:
        # connection.sleep keeps heartbeats flowing while we wait for PostgreSQL.
        deadline = time.monotonic() + seconds
        while not self.stop.is_set() and time.monotonic() < deadline:
            with topology.translated_errors():
                connection.sleep(max(0.0, min(0.2, deadline - time.monotonic())))
