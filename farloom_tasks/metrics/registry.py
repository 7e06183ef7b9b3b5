"""The one Prometheus mechanism of Farloom's processes: a private registry per process role.

Each role (``ingest``, ``writer``) keeps its series in a registry of its own, so
that a process holding several (a test, a benchmark harness, Celery) never
collides on a name, and serves it with ``serve(port)``. Every series of a role is
named ``farloom_<role>_...``, and each role counts the store failures it retried
in the same way (``transient_errors``), labelled by ``service_label``.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from farloom_tasks.errors import (
    BrokerUnavailable,
    DatabaseUnavailable,
    RedisUnavailable,
    TransientError,
)


def service_label(exc: TransientError) -> str:
    """The ``service`` label of a retried failure: postgresql, redis, rabbitmq or other."""
    if isinstance(exc, DatabaseUnavailable):
        return "postgresql"
    if isinstance(exc, RedisUnavailable):
        return "redis"
    return "rabbitmq" if isinstance(exc, BrokerUnavailable) else "other"


class RoleMetrics:
    """The series of one process role, in a registry no other role shares."""

    def __init__(self, role: str) -> None:
        self.prefix = f"farloom_{role}_"
        self.registry = CollectorRegistry()

    def name(self, name: str) -> str:
        """``name`` itself, once checked to belong to this role (dashboards rely on it)."""
        if not name.startswith(self.prefix):
            raise ValueError(f"{name!r} is not a {self.prefix}* series")
        return name

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        return Counter(self.name(name), documentation, labels, registry=self.registry)

    def histogram(self, name: str, documentation: str, buckets: Sequence[float]) -> Histogram:
        return Histogram(self.name(name), documentation, registry=self.registry,
                         buckets=buckets)

    def transient_errors(self, documentation: str) -> Counter:
        """``farloom_<role>_transient_errors_total``: failures retried, by ``service``."""
        return self.counter(f"{self.prefix}transient_errors_total", documentation, ["service"])

    def serve(self, port: int) -> None:
        """Serve /metrics on ``port`` from a daemon thread; 0 means metrics are off."""
        if port > 0:
            start_http_server(port, registry=self.registry)
