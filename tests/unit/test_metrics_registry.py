"""One metrics mechanism: a private registry per process role, names checked, one serve."""

from __future__ import annotations

import pytest

from farloom_tasks.errors import (
    BrokerUnavailable,
    DatabaseUnavailable,
    RedisUnavailable,
    TransientError,
)
from farloom_tasks.metrics import ingest, writer
from farloom_tasks.metrics.registry import RoleMetrics, service_label


def test_each_role_keeps_its_series_in_a_registry_of_its_own() -> None:
    assert ingest.REGISTRY is not writer.REGISTRY
    names = {family.name for family in ingest.REGISTRY.collect()}
    assert "farloom_ingest_transient_errors" in names
    assert not any(name.startswith("farloom_writer_") for name in names)


def test_a_series_outside_its_roles_prefix_is_refused() -> None:
    role = RoleMetrics("example")
    role.counter("farloom_example_things_total", "doc")
    with pytest.raises(ValueError, match="farloom_example_"):
        role.counter("farloom_other_things_total", "doc")


def test_both_roles_count_retried_failures_by_service_the_same_way() -> None:
    for module, role in ((ingest, "ingest"), (writer, "writer")):
        module.TRANSIENT_ERRORS.labels("postgresql").inc()
        assert module.REGISTRY.get_sample_value(
            f"farloom_{role}_transient_errors_total", {"service": "postgresql"}) is not None


def test_a_retried_failure_is_labelled_with_the_service_that_failed() -> None:
    assert service_label(DatabaseUnavailable("x")) == "postgresql"
    assert service_label(RedisUnavailable("x")) == "redis"
    assert service_label(BrokerUnavailable("x")) == "rabbitmq"
    assert service_label(TransientError("x")) == "other"


def test_port_zero_means_metrics_are_off() -> None:
    RoleMetrics("quiet").serve(0)  # no thread, no socket: nothing to assert but no error
