"""A confirming publisher for ``farloom.aggregates`` (adapter over pika).

Messages are persistent and published with ``mandatory`` under publisher
confirms: ``publish_all`` returns only when the broker has taken every message
(a nack, an unroutable message or a lost connection raises BrokerUnavailable).
Re-publishing a whole revision is always safe, because the aggregated writer
deduplicates parts by (minute, revision, part); so after any failure the caller
simply publishes the revision again.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

import pika

from farloom_tasks.errors import BrokerUnavailable
from farloom_tasks.stores import topology

log = logging.getLogger(__name__)


class AggregatesPublisher:
    """One connection per worker process, opened on first use and after any failure."""

    def __init__(self, amqp_url: str, queue_type: topology.QueueType) -> None:
        self.amqp_url = amqp_url  # may name several nodes: connect tries them in turn
        self.queue_type = queue_type
        self._connection: Any = None
        self._channel: Any = None

    def _open(self) -> Any:
        if self._channel is None or not self._channel.is_open:
            self.close()
            self._connection = topology.connect(self.amqp_url, role="aggregates publisher")
            with topology.translated_errors():
                channel = self._connection.channel()
                topology.declare(channel, self.queue_type)
                channel.confirm_delivery()
            self._channel = channel
        return self._channel

    def close(self) -> None:
        if self._connection is not None:
            # A broken connection may fail to close; it is gone either way.
            with contextlib.suppress(Exception):
                self._connection.close()
        self._connection = None
        self._channel = None

    def publish_all(self, bodies: Iterable[bytes]) -> int:
        """Publish ``bodies`` in order; return how many, once all are confirmed."""
        count = 0
        try:
            channel = self._open()
            with topology.translated_errors():
                # An idle BlockingConnection misses heartbeats between tasks; find
                # out now, not halfway through a revision.
                self._connection.process_data_events(time_limit=0)
                for body in bodies:
                    channel.basic_publish(
                        exchange=topology.AGGREGATES_EXCHANGE, routing_key="", body=body,
                        properties=pika.BasicProperties(
                            content_type="application/json",
                            delivery_mode=topology.PERSISTENT,
                            headers={topology.PUBLISHED_AT_HEADER:
                                     topology.published_at_stamp(time.time())}),
                        mandatory=True)
                    count += 1
        except BrokerUnavailable:
            self.close()
            raise
        return count


def publish_with_one_reconnect(publisher: AggregatesPublisher,
                               make_bodies: Any) -> int:
    """Publish ``make_bodies()``; if the cached connection turned out dead, once more."""
    try:
        count: int = publisher.publish_all(make_bodies())
        return count
    except BrokerUnavailable as exc:
        log.info("republishing after a lost broker connection: %s", exc)
        count = publisher.publish_all(make_bodies())
        return count
