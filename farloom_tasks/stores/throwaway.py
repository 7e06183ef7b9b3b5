"""Throw-away Farloom environments (benchmarks, tests): empty one, pick a Redis db for one.

A benchmark run and a test run build their own database, vhost and Redis db on
the configured servers and drop them at the end. ``empty_everything`` puts such
an environment back to a fresh start between runs; ``redis_db_lock`` hands out
a Redis db number that no other benchmark or test run on this machine holds,
since a Redis db has no name to make unique and each run flushes its own.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Collection, Iterator

import sqlalchemy as sa

from farloom_tasks.errors import ConfigError
from farloom_tasks.settings import Settings
from farloom_tasks.stores import db, redis_client, topology

# One lock file per Redis db number, the same for benchmarks and test runs, so two
# runs on one machine never pick, and flush, the same Redis db.
REDIS_DB_LOCK = "/tmp/farloom-test-redis-db-{number}.lock"
QUEUES = (topology.INGEST_QUEUE, topology.DEAD_QUEUE,
          topology.AGGREGATES_QUEUE, topology.AGGREGATES_DEAD_QUEUE)


def empty_everything(settings: Settings, keep: Collection[str] = ()) -> None:
    """Empty every raw, agg and auth table (API keys too), the Redis db and every
    Farloom queue of ``settings``.

    For throw-away environments only (benchmarks, tests): it deletes all data, but
    for the tables (e.g. partitions, as ``raw.ad_clicks_p20261202_1300``) named in
    ``keep``.
    """
    engine = db.make_engine(settings.database_url, pool_size=1)
    try:
        with db.translated_errors(), engine.begin() as conn:
            # Leaf tables only: truncating a partitioned parent would empty every partition.
            tables = conn.execute(sa.text(
                "SELECT n.nspname || '.' || c.relname FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname IN ('raw', 'agg', 'auth') AND c.relkind = 'r' "
                "AND c.relname <> 'partitions' "
                "AND NOT (n.nspname || '.' || c.relname) = ANY(:keep)"),
                {"keep": list(keep)}).scalars().all()
            conn.exec_driver_sql(f"TRUNCATE {', '.join(tables)}")
            # The partitions stay (empty), and so does their ledger, which processes
            # cache; what retention dropped may be made again.
            conn.exec_driver_sql("DELETE FROM raw.partitions WHERE dropped_at IS NOT NULL")
            conn.exec_driver_sql(
                "INSERT INTO agg.watermark (id, closed_through) VALUES (1, NULL)")
    finally:
        engine.dispose()
    client = redis_client.connect(settings)
    try:
        redis_client.flush_db(client)  # on a cluster: every master
    finally:
        client.close()
    connection = topology.connect(settings.amqp_url)
    try:
        channel = connection.channel()
        topology.declare(channel, topology.QueueType.of(settings))
        with topology.translated_errors():
            for queue in QUEUES:
                channel.queue_purge(queue)
    finally:
        with contextlib.suppress(Exception):
            connection.close()


@contextlib.contextmanager
def redis_db_lock() -> Iterator[int]:
    """Hold a Redis db number in 1-15 that no other test or benchmark run holds."""
    for number in range(1, 16):
        handle = open(REDIS_DB_LOCK.format(number=number), "w")  # noqa: SIM115
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        try:
            yield number
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        return
    raise ConfigError("Redis db numbers 1-15 are all held by test or benchmark runs; "
                      "wait for them to finish")
