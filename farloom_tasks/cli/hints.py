"""What the ``farloom`` command tells a person when a service cannot be reached.

Shared by the command's error handler (``cli/__init__.py``) and
``farloom status --preflight``, so both give the same advice.
"""

from __future__ import annotations

from farloom_tasks.errors import BrokerUnavailable, DatabaseUnavailable, RedisUnavailable

HINTS = {
    DatabaseUnavailable: "Is PostgreSQL running? Start it with: "
    "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start "
    "(or check FARLOOM_DATABASE_URL).",
    RedisUnavailable: "Is Redis running? Start it with: redis-server --daemonize yes "
    "(or check FARLOOM_REDIS_URL).",
    BrokerUnavailable: "Is RabbitMQ running? Start it with: rabbitmq-server -detached "
    "(or check FARLOOM_AMQP_URL).",
}
