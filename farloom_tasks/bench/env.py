"""The benchmark's isolated environment: its own database, Redis db and vhost.

``farloom bench`` runs outside pytest, often on a machine where other work uses
the same services, so it never touches the configured database, Redis db or
vhost: it derives a throw-away trio from the configured URLs (same servers,
new names), migrates it, and removes it at the end, also when interrupted.

A Redis Cluster has db 0 only, so there is no other db to take: with
``FARLOOM_REDIS_CLUSTER=1`` the benchmark uses the given cluster as it is and
flushes every master of it before and after (point it at a throw-away cluster).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psutil
import sqlalchemy as sa

from farloom_tasks.errors import BrokerUnavailable
from farloom_tasks.settings import ENV_PREFIX, Settings
from farloom_tasks.stores import db, redis_client, topology
from farloom_tasks.stores import migrations as migrate
from farloom_tasks.stores.throwaway import empty_everything, redis_db_lock


@dataclass(frozen=True)
class BenchEnv:
    settings: Settings
    vhost: str

    def subprocess_env(self) -> dict[str, str]:
        """Environment for a worker subprocess: every setting, pointed at this environment."""
        env = dict(os.environ)
        for name, value in vars(self.settings).items():
            env[ENV_PREFIX + name.upper()] = str(value)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def reset(self, keep: Collection[str] = ()) -> None:
        """Empty every table (but those in ``keep``), the Redis db and every queue, so runs
        start alike."""
        empty_everything(self.settings, keep)

    def stored_clicks(self, keep: Collection[str] = ()) -> int:
        """Rows in raw.ad_clicks, but for its partitions in ``keep`` (as ``reset`` leaves
        them): what has been made durable so far."""
        engine = db.make_engine(self.settings.database_url, pool_size=1)
        try:
            with db.translated_errors(), engine.connect() as conn:
                if not keep:
                    return int(conn.execute(sa.text("SELECT count(*) FROM raw.ad_clicks"))
                               .scalar() or 0)
                # Partition by partition: a filter on tableoid would still read the kept ones.
                others = conn.execute(sa.text(
                    "SELECT i.inhrelid::regclass::text FROM pg_inherits i "
                    "WHERE i.inhparent = 'raw.ad_clicks'::regclass "
                    "AND NOT i.inhrelid::regclass::text = ANY(:keep)"),
                    {"keep": list(keep)}).scalars().all()
                return sum(int(conn.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar()
                               or 0) for name in others)
        finally:
            engine.dispose()

    def ingest_queue_depth(self) -> int:
        """Messages waiting in farloom.clicks.ingest."""
        connection = topology.connect(self.settings.amqp_url)
        try:
            return topology.queue_depth(connection.channel(), topology.INGEST_QUEUE)
        finally:
            with contextlib.suppress(Exception):
                connection.close()


def _rabbitmqctl(*args: str) -> None:
    if shutil.which("rabbitmqctl") is None:
        raise BrokerUnavailable("the benchmark creates its own vhost with rabbitmqctl, "
                                "which is not on PATH; run it on the RabbitMQ host")
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                          timeout=60, check=False)
    if done.returncode != 0:
        raise BrokerUnavailable(f"rabbitmqctl {' '.join(args)} failed: "
                                f"{(done.stderr or done.stdout).strip()[:300]}")


def _with_vhost(amqp_url: str, vhost: str) -> str:
    # Each node's URL of a cluster (comma-separated) gets the vhost.
    return ",".join(urlunsplit(urlsplit(url)._replace(path="/" + quote(vhost, safe="")))
                    for url in topology.broker_urls(amqp_url))


def _with_redis_db(settings: Settings, number: int) -> str:
    if settings.redis_cluster:
        return settings.redis_url  # db 0 is a cluster's only db
    return _db_of(settings.redis_url, number)


def _db_of(redis_url: str, number: int) -> str:
    return urlunsplit(urlsplit(redis_url)._replace(path=f"/{number}"))


def _celery_results(settings: Settings, number: int) -> str:
    """Beside a cluster, Celery's results go to the locked db of the plain Redis."""
    return _db_of(settings.celery_result_url, number) if settings.redis_cluster else ""


@contextlib.contextmanager
def isolated_bench_env(settings: Settings) -> Iterator[BenchEnv]:
    """A fresh, migrated environment on the configured servers, removed on exit."""
    run_id = uuid.uuid4().hex[:10]
    vhost = f"farloom-bench-{run_id}"
    database_url = sa.make_url(settings.database_url).set(
        database=f"farloom_bench_{run_id}").render_as_string(hide_password=False)
    with redis_db_lock() as redis_db:
        env = BenchEnv(replace(settings, database_url=database_url,
                               amqp_url=_with_vhost(settings.amqp_url, vhost),
                               redis_url=_with_redis_db(settings, redis_db),
                               celery_result_url=_celery_results(settings, redis_db)), vhost)
        _rabbitmqctl("add_vhost", vhost)
        try:
            user = urlsplit(settings.amqp_url).username or "guest"
            _rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
            migrate.upgrade(database_url)
            env.reset()
            yield env
        finally:
            with contextlib.suppress(Exception):
                db.drop_database(database_url)
            with contextlib.suppress(Exception):
                client = redis_client.connect(env.settings)
                redis_client.flush_db(client)  # on a cluster: every master
                client.close()
            if env.settings.celery_result_url:
                with contextlib.suppress(Exception):
                    redis_client.flush_db(redis_client.connect_url(
                        env.settings.celery_result_url, cluster=False))
            with contextlib.suppress(Exception):
                _rabbitmqctl("delete_vhost", vhost)


def describe_machine(settings: Settings) -> list[tuple[str, str]]:
    """(item, value) rows describing the machine and service versions, for the docs."""
    rows = [("CPU", _cpu_model()), ("cores (nproc)", str(os.cpu_count() or "?")),
            ("memory", f"{psutil.virtual_memory().total / 2**30:.1f} GiB"),
            ("OS", f"{platform.system()} {platform.release()}"),
            ("Python", platform.python_version())]
    engine = db.make_engine(settings.database_url, pool_size=1)
    try:
        with db.translated_errors(), engine.connect() as conn:
            rows.append(("PostgreSQL", str(conn.execute(sa.text("SHOW server_version")).scalar())))
    finally:
        engine.dispose()
    client = redis_client.connect(settings)
    try:
        servers = redis_client.server_info(client, "server")
    finally:
        client.close()
    versions = ", ".join(sorted({str(info.get("redis_version", "?"))
                                 for info in servers.values()}))
    if settings.redis_cluster:
        rows.append(("Redis", f"a Redis Cluster of {len(servers)} masters "
                              f"({', '.join(sorted(servers))}), version {versions}"))
    else:
        rows.append(("Redis", versions))
    connection = topology.connect(settings.amqp_url)
    try:
        version = connection._impl.server_properties.get("version", b"?")
        named = version.decode() if isinstance(version, bytes) else str(version)
        nodes = len(topology.broker_urls(settings.amqp_url))
        rows.append(("RabbitMQ", f"{named}, {settings.queue_type} queues"
                                 + (f", {nodes} broker addresses" if nodes > 1 else "")))
    finally:
        with contextlib.suppress(Exception):
            connection.close()
    return rows


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"
