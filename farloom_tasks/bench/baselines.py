"""The two baseline consumers ``farloom bench ingest`` compares Farloom's ingest worker with.

- ``null``: decodes each body with orjson and acks; nothing is stored. It is the
  ceiling RabbitMQ and pika allow one Python process. Acks go out with
  ``multiple=True`` every ACK_EVERY messages (and when idle), as a fast
  consumer would, so the ceiling is not lowered by an ack per message.
- ``naive``: what a first attempt looks like: prefetch_count=1, and for each
  click one INSERT committed on its own and one ZINCRBY, then one ack per message.

Each runs as its own process (``farloom bench baseline-consumer KIND``),
like the real worker, so that the three compete for the CPU alike and their
RSS can be sampled. It consumes until it has seen ``--expect-messages``, the
``--time-cap`` passes or SIGTERM arrives, then prints one JSON line of figures,
including a timeline of acked clicks from which the harness reads the steady
rate inside a sustained run's window.
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from farloom_tasks.bench.options import BaselineOptions
from farloom_tasks.core.messages import decode_message
from farloom_tasks.core.shards import shard_of
from farloom_tasks.core.windows import minute_of
from farloom_tasks.settings import Settings
from farloom_tasks.stores import db, redis_client, redis_counts, topology
from farloom_tasks.stores.partitions import RAW, PartitionCache, length_seconds_of

ACK_EVERY = 200  # messages per multiple-ack of the null consumer
IDLE_POLL = 0.1  # s the consume loop waits before rechecking its stop conditions
TIMELINE_STEP = 0.1  # s between timeline samples

_NAIVE_INSERT = (
    "INSERT INTO raw.ad_clicks (click_id, ad_id, clicked_at, minute, user_id, ip, country) "
    "VALUES (%s, %s, to_timestamp(%s), date_trunc('minute', to_timestamp(%s), 'UTC'), "
    "%s, %s::inet, %s) ON CONFLICT DO NOTHING"
)  # the conflict is against the click's partition's own unique index on click_id


@dataclass
class ConsumerStats:
    messages: int = 0
    clicks: int = 0
    first_at: float | None = None  # wall clock of the first delivery
    last_at: float | None = None  # wall clock of the last ack
    timeline: list[tuple[float, int]] = field(default_factory=list)  # (wall clock, acked clicks)

    def report(self) -> dict[str, Any]:
        if self.last_at is not None and (not self.timeline or self.timeline[-1][1] != self.clicks):
            self.timeline.append((self.last_at, self.clicks))
        elapsed = (self.last_at or 0.0) - (self.first_at or 0.0)
        figures = asdict(self)
        figures.update(elapsed_s=round(elapsed, 4),
                       clicks_per_s=round(self.clicks / elapsed, 1) if elapsed > 0 else 0.0)
        return figures


class _Run:
    """Stop conditions and progress marks shared by both consumers."""

    def __init__(self, expect_messages: int, time_cap: float) -> None:
        self.expect_messages = expect_messages
        self.deadline = time.time() + time_cap
        self.stats = ConsumerStats()
        self.stopping = False

    def tick(self) -> bool:
        """True while consuming should go on."""
        now = time.time()
        return (not self.stopping and now < self.deadline
                and self.stats.messages < self.expect_messages)

    def delivered(self) -> None:
        if self.stats.first_at is None:
            self.stats.first_at = time.time()

    def acked(self, messages: int, clicks: int) -> None:
        self.stats.messages += messages
        self.stats.clicks += clicks
        self.stats.last_at = now = time.time()
        timeline = self.stats.timeline
        # Each sample is exact at its time; in between, readers see the older
        # sample, which can only understate a rate.
        if not timeline or now - timeline[-1][0] >= TIMELINE_STEP:
            timeline.append((now, self.stats.clicks))


def run_null(settings: Settings, run: _Run) -> None:
    # Callbacks (basic_consume + process_data_events), as the ingest worker consumes:
    # pika's consume() generator costs more per message and would lower the ceiling.
    connection = topology.connect(settings.amqp_url)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=settings.prefetch_count)
    pending = {"messages": 0, "clicks": 0, "tag": 0}

    def ack() -> None:
        if pending["messages"]:
            channel.basic_ack(pending["tag"], multiple=True)
            run.acked(pending["messages"], pending["clicks"])
            pending.update(messages=0, clicks=0)

    def on_message(_channel: Any, method: Any, _properties: Any, body: bytes) -> None:
        run.delivered()
        payload = orjson.loads(body)
        pending["messages"] += 1
        pending["clicks"] += len(payload) if isinstance(payload, list) else 1
        pending["tag"] = method.delivery_tag
        if (pending["messages"] >= ACK_EVERY
                or run.stats.messages + pending["messages"] >= run.expect_messages):
            ack()

    try:
        channel.basic_consume(topology.INGEST_QUEUE, on_message)
        while run.tick():
            connection.process_data_events(time_limit=IDLE_POLL)
            ack()
    finally:
        connection.close()  # unacked deliveries go back to the queue


def run_naive(settings: Settings, run: _Run) -> None:
    engine = db.make_engine(settings.database_url, pool_size=1)
    conn: Any = engine.raw_connection()
    # As the ingest worker does: a partition is made on a miss, the cache answers after.
    partitions = PartitionCache(engine, RAW, length_seconds_of(settings.raw_partition_hours))
    zset = redis_client.connect(settings)
    connection = topology.connect(settings.amqp_url)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=1)
    try:
        for method, _, body in channel.consume(topology.INGEST_QUEUE,
                                               inactivity_timeout=IDLE_POLL):
            if method is not None:
                run.delivered()
                decoded = decode_message(body, now=time.time(),
                                         max_skew=settings.max_clock_skew_seconds,
                                         max_bytes=settings.max_message_bytes)
                partitions.ensure_for([click.clicked_at for click in decoded.clicks])
                for click in decoded.clicks:
                    with conn.cursor() as cursor:
                        cursor.execute(_NAIVE_INSERT, (
                            click.click_id, click.ad_id, click.clicked_at, click.clicked_at,
                            click.user_id, click.ip, click.country))
                    conn.commit()
                    minute = minute_of(click.clicked_at)
                    zset.zincrby(redis_counts.clicks_key(
                        shard_of(click.ad_id, settings.shard_count), minute), 1, click.ad_id)
                channel.basic_ack(method.delivery_tag)
                run.acked(1, len(decoded.clicks))
            if not run.tick():
                break
    finally:
        connection.close()
        conn.close()
        partitions.close()
        engine.dispose()


CONSUMERS = {"null": run_null, "naive": run_naive}


def run(options: BaselineOptions, settings: Settings) -> int:
    """Consume until a stop condition, then print the figures as one JSON line on stdout."""
    run = _Run(options.expect_messages, options.time_cap)

    def stop(_signum: int, _frame: object) -> None:
        run.stopping = True

    signal.signal(signal.SIGTERM, stop)
    CONSUMERS[options.kind](settings, run)
    sys.stdout.write(orjson.dumps(run.stats.report()).decode() + "\n")
    return 0
