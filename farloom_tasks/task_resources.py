"""The connections one Celery worker process uses, built lazily after the fork.

Prefork children must not share sockets with their parent, so nothing is
opened at import; the first task in a process opens what it needs, and a
process that notices it was forked since (a new pid) starts afresh.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from farloom_tasks import failpoints
from farloom_tasks.core.partitions import HOUR
from farloom_tasks.settings import Settings
from farloom_tasks.stores import db, redis_client, redis_counts
from farloom_tasks.stores.aggregates_publisher import AggregatesPublisher
from farloom_tasks.stores.queue_types import QueueType
from farloom_tasks.stores.raw import RawStore


@dataclass
class TaskResources:
    settings: Settings
    pid: int = field(default_factory=os.getpid)
    _engine: Engine | None = None
    _redis: redis_client.RedisClient | None = None
    _counts: redis_counts.RedisCounts | None = None
    _raw: RawStore | None = None
    _publisher: AggregatesPublisher | None = None
    _failpoints: dict[str, int] | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = db.make_engine(self.settings.database_url, pool_size=2)
        return self._engine

    @property
    def redis(self) -> redis_client.RedisClient:
        if self._redis is None:
            self._redis = redis_client.connect(self.settings)
        return self._redis

    @property
    def counts(self) -> redis_counts.RedisCounts:
        if self._counts is None:
            self._counts = redis_counts.RedisCounts(self.redis,
                                                    self.settings.redis_retention_seconds)
        return self._counts

    @property
    def raw(self) -> RawStore:
        if self._raw is None:
            self._raw = RawStore(self.engine, self.settings.shard_count,
                                 self.settings.raw_partition_hours * HOUR)
        return self._raw

    @property
    def publisher(self) -> AggregatesPublisher:
        if self._publisher is None:
            self._publisher = AggregatesPublisher(self.settings.amqp_url,
                                                  QueueType.of(self.settings))
        return self._publisher

    def failpoint(self, name: str, instance: str) -> None:
        if self._failpoints is None:
            self._failpoints = failpoints.parse(self.settings.failpoints)
        failpoints.hit(self._failpoints, name, instance, self.redis)


_current: TaskResources | None = None


def current(settings: Settings) -> TaskResources:
    """This process's resources for ``settings``."""
    global _current
    if _current is None or _current.pid != os.getpid() or _current.settings != settings:
        _current = TaskResources(settings)
    return _current
