"""The ingest worker's RabbitMQ consumer (adapter) on ``farloom.clicks.ingest``, with its window.

The window follows the prefetch controller (core.prefetch) to bound memory.
It is per consumer, not channel-wide (``global_qos``): a channel-wide window
costs RabbitMQ noticeably more CPU per delivered message (docs/benchmarks.md,
"Why the ingest code is as it is"). RabbitMQ applies a new per-consumer
prefetch only to consumers created after it, so a resize re-subscribes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from farloom_tasks.core import prefetch
from farloom_tasks.core.batching import Batch
from farloom_tasks.metrics.ingest import IngestStats
from farloom_tasks.stores import topology

log = logging.getLogger("farloom.ingest")


class Subscription:
    """The consumer of one channel at a time; what it learnt of message sizes outlives channels."""

    def __init__(self, batch_size: int, ceiling: int,
                 on_message: Callable[[Any, Any, Any, bytes], None], stats: IngestStats) -> None:
        self.stats = stats  # its prefetch and prefetch_changes are kept here
        self.batch_size = batch_size
        self.ceiling = ceiling  # messages, settings.prefetch_count
        self.on_message = on_message
        self.window = prefetch.Window(ceiling)
        self.consumer_tag: str | None = None  # while consuming
        self._channel: Any = None

    @property
    def prefetch(self) -> int:
        """Messages, as last sent with basic.qos."""
        return self.window.prefetch

    def limit(self, channel: Any) -> None:
        """Give a new channel the starting window (core.prefetch.starting_prefetch)."""
        self._channel = channel
        self.window = prefetch.Window(prefetch.starting_prefetch(self.ceiling),
                                      self.window.clicks_per_message)
        self.stats.prefetch = self.window.prefetch
        with topology.translated_errors():
            channel.basic_qos(prefetch_count=self.window.prefetch)

    def consume(self) -> None:
        with topology.translated_errors():
            self.consumer_tag = self._channel.basic_consume(topology.INGEST_QUEUE,
                                                            self.on_message)

    def cancel(self) -> None:
        """Stop deliveries (the worker is stopping): no new consumer after this."""
        with topology.translated_errors():
            self._channel.basic_cancel(self.consumer_tag)
        self.consumer_tag = None

    def follow(self, batch: Batch) -> bool:
        """Learn from an acked batch; True when the window changed (basic.qos, re-subscribed)."""
        old = self.window
        new = prefetch.follow(old, items=batch.clicks_received + len(batch.dead_letters),
                              messages=batch.messages, batch_size=self.batch_size,
                              ceiling=self.ceiling)
        self.window = dataclasses.replace(old, clicks_per_message=new.clicks_per_message)
        if new.prefetch == old.prefetch:
            return False
        with topology.translated_errors():
            self._channel.basic_qos(prefetch_count=new.prefetch)
        log.info("prefetch %d -> %d messages (%.1f clicks per message)",
                 old.prefetch, new.prefetch, new.clicks_per_message)
        self.window = new
        self.stats.prefetch = new.prefetch
        self.stats.prefetch_changes += 1
        self._resubscribe()
        return True

    def _resubscribe(self) -> None:
        """Replace the consumer, so that the window last set with basic.qos applies.

        Deliveries already handed to ``on_message`` stay unacked on this channel
        and are acked with their batch. pika rejects with requeue whatever arrived
        for the old consumer but was not yet dispatched: nothing of it was batched,
        and the broker delivers it again, to this worker or another.
        """
        if self.consumer_tag is None:  # stopping: no new consumer
            return
        with topology.translated_errors():
            self._channel.basic_cancel(self.consumer_tag)
            self.consumer_tag = self._channel.basic_consume(topology.INGEST_QUEUE,
                                                            self.on_message)
