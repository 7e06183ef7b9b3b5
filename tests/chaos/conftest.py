"""Chaos scenarios: the whole pipeline as real processes, with real faults injected.

Every test here is slow and needs the real services. The chaos tests get a
stack of their own (database, Redis db, vhost), separate from the session
stack of tests/integration, because that session may keep a Celery worker
consuming its vhost's task queue: a worker the scenario cannot kill.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack import Stack, isolated_stack

CHAOS_DIR = Path(__file__).parent
# Under `make test` (pytest-xdist, --dist loadgroup) each group runs in one process, one
# scenario after another: at most two whole pipelines share the machine's two cores,
# while a third process runs the other tests. The groups take about as long as each other.
SCENARIO_GROUPS = {
    "test_sustained_load.py": "chaos-a", "test_ingest_worker_killed.py": "chaos-a",
    "test_celery_worker_killed.py": "chaos-a", "test_rabbitmq_cluster_node_stopped.py": "chaos-a",
    "test_two_beats.py": "chaos-b", "test_broker_restarted.py": "chaos-b",
    "test_redis_lost.py": "chaos-b", "test_postgresql_outage.py": "chaos-b",
    "test_poison_input.py": "chaos-b", "test_redis_master_lost.py": "chaos-b",
}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Conftest hooks see every collected item, not only this directory's.
    for item in items:
        path = Path(str(item.fspath))
        if CHAOS_DIR in path.parents:
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.xdist_group(SCENARIO_GROUPS.get(path.name, "chaos-b")))


@pytest.fixture(scope="package")
def chaos_stack() -> Iterator[Stack]:
    with isolated_stack() as stack:
        yield stack


@pytest.fixture
def stack(chaos_stack: Stack) -> Stack:
    """The chaos package's own stack, emptied before the test."""
    chaos_stack.reset()
    return chaos_stack
