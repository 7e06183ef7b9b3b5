"""An isolated Farloom stack for one test run: own database, Redis db and vhost.

Real PostgreSQL, Redis and RabbitMQ on this machine; nothing is mocked. Each
pytest process gets a fresh database ``farloom_test_<run>``, a Redis db number
held by a lock file (so parallel runs never share one), and a RabbitMQ vhost
``farloom-test-<run>``; all three are removed at the end.

A stack on a Redis Cluster (``isolated_stack(redis_cluster=...)``) keeps its
counts on the test session's private cluster (tests/support/redis_cluster.py;
one stack per cluster at a time, since a cluster has db 0 only) and Celery's
results in its plain Redis db, as FARLOOM_CELERY_RESULT_URL asks on a cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any

import pika
import sqlalchemy as sa

from farloom_tasks.settings import Settings
from farloom_tasks.stores import db, redis_client, topology
from farloom_tasks.stores import migrations as migrate
from farloom_tasks.stores.redis_counts import RedisCounts
from farloom_tasks.stores.throwaway import empty_everything, redis_db_lock
from tests.support.redis_cluster import RedisClusterUnderTest

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Stack:
    settings: Settings
    run_id: str
    vhost: str
    redis_db: int

    @property
    def env(self) -> dict[str, str]:
        """Environment for subprocesses (workers, CLI) pointed at this stack."""
        env = dict(os.environ)
        env.update({
            "FARLOOM_DATABASE_URL": self.settings.database_url,
            "FARLOOM_AMQP_URL": self.settings.amqp_url,
            "FARLOOM_REDIS_URL": self.settings.redis_url,
            "FARLOOM_REDIS_CLUSTER": "1" if self.settings.redis_cluster else "0",
            "FARLOOM_CELERY_RESULT_URL": self.settings.celery_result_url,
            "FARLOOM_QUEUE_TYPE": self.settings.queue_type,
            "FARLOOM_QUORUM_DELIVERY_LIMIT": str(self.settings.quorum_delivery_limit),
            "FARLOOM_SHARD_COUNT": str(self.settings.shard_count),
            "FARLOOM_GRACE_SECONDS": str(self.settings.grace_seconds),
            "FARLOOM_BATCH_SIZE": str(self.settings.batch_size),
            "FARLOOM_FLUSH_INTERVAL_SECONDS": str(self.settings.flush_interval_seconds),
            "PYTHONUNBUFFERED": "1",
        })
        return env

    def engine(self) -> sa.Engine:
        return db.make_engine(self.settings.database_url, pool_size=2)

    def redis(self) -> redis_client.RedisClient:
        """A client of the stack's Redis: its db, or the cluster (as Farloom connects)."""
        return redis_client.connect(self.settings)

    def counts(self) -> RedisCounts:
        return RedisCounts(self.redis(), self.settings.redis_retention_seconds)

    def amqp(self) -> pika.BlockingConnection:
        return topology.connect(self.settings.amqp_url)

    def farloom(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run the ``farloom`` CLI against this stack and wait for it (``env=`` replaces
        the stack's environment)."""
        return subprocess.run([sys.executable, "-m", "farloom_tasks.cli", *args],
                              env=kwargs.pop("env", self.env), cwd=PROJECT_ROOT, text=True,
                              capture_output=True, timeout=kwargs.pop("timeout", 300), **kwargs)

    def spawn(self, *args: str, log: IO[str] | None = None,
              env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start a long-running ``farloom`` subcommand (a worker) against this stack
        (``env=`` replaces the stack's environment)."""
        return subprocess.Popen([sys.executable, "-m", "farloom_tasks.cli", *args],
                                env=self.env if env is None else env, cwd=PROJECT_ROOT,
                                text=True,
                                stdout=log or subprocess.DEVNULL,
                                stderr=subprocess.STDOUT if log else subprocess.DEVNULL)

    def with_settings(self, **changes: Any) -> Stack:
        return replace(self, settings=replace(self.settings, **changes))

    def reset(self) -> None:
        """Empty every table, the Redis db (every master of a cluster, and the results
        db) and every queue: a clean slate per test."""
        empty_everything(self.settings)
        if self.settings.celery_result_url:
            _flush(self.settings.celery_result_url)


def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    """Run ``rabbitmqctl -q ARGS`` against the local node; its output (fails loudly)."""
    return subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True,
                          text=True, timeout=timeout).stdout


def _flush(redis_url: str, *, cluster: bool = False) -> None:
    client = redis_client.connect_url(redis_url, cluster=cluster)
    try:
        redis_client.flush_db(client)
    finally:
        client.close()


@contextmanager
def isolated_stack(*, redis_cluster: RedisClusterUnderTest | None = None,
                   **overrides: Any) -> Iterator[Stack]:
    """A fresh stack; with ``redis_cluster``, its counts live on that cluster."""
    run_id = uuid.uuid4().hex[:10]
    vhost = f"farloom-test-{run_id}"
    with redis_db_lock() as redis_db:
        own_db = f"redis://127.0.0.1:6379/{redis_db}"
        on_cluster = {} if redis_cluster is None else {
            "redis_cluster": True, "redis_url": redis_cluster.seed_url,
            "celery_result_url": own_db}
        settings = replace(
            Settings.from_env({}),
            database_url=f"postgresql+psycopg2://postgres@127.0.0.1:5432/farloom_test_{run_id}",
            amqp_url=f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
            **{"redis_url": own_db, **on_cluster, **overrides},
        )
        rabbitmqctl("add_vhost", vhost)
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        _flush(own_db)
        _flush(settings.redis_url, cluster=settings.redis_cluster)
        stack = Stack(settings=settings, run_id=run_id, vhost=vhost, redis_db=redis_db)
        try:
            migrate.upgrade(settings.database_url)
            yield stack
        finally:
            db.drop_database(settings.database_url)
            _flush(settings.redis_url, cluster=settings.redis_cluster)
            _flush(own_db)
            rabbitmqctl("delete_vhost", vhost)
