from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# Fixtures shared by every module. Defined here once: a session-scoped fixture
# imported into several test modules becomes one instance per module, which
# started a Celery worker per module, all competing for the same queue.
from tests.support.celery_worker import (  # noqa: F401
    celery_worker,
    cluster_session_worker,
    session_worker,
)
from tests.support.minute_checks import aggregate_writer  # noqa: F401
from tests.support.redis_cluster import (
    RedisClusterUnderTest,
    redis_cluster,  # noqa: F401
)
from tests.support.stack import Stack, isolated_stack

TESTS_DIR = Path(__file__).parent
INTEGRATION_DIR = TESTS_DIR / "integration"
# The scenarios whose length is set by what they test (minutes of wall clock), longest
# first. They are handed out first, so that `make test`'s two pytest-xdist processes
# spend the end of the run on short tests and finish together.
# (The chaos scenarios go out first anyway, as two groups: tests/chaos/conftest.py.)
LONGEST_FIRST = [
    "chaos/test_sustained_load.py",
    "chaos/test_two_beats.py",
    "integration/test_make_run.py",
    "integration/test_talkingdata.py",
    "chaos/test_celery_worker_killed.py",
    "chaos/test_ingest_worker_killed.py",
    "chaos/test_broker_restarted.py",
    "chaos/test_rabbitmq_cluster_node_stopped.py",
    "chaos/test_redis_lost.py",
    "chaos/test_postgresql_outage.py",
    "chaos/test_poison_input.py",
    "integration/test_bench_ingest.py",
    "integration/test_ingest.py",
]


def _on_the_cluster(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    return ("redis_cluster" in getattr(item, "fixturenames", ())
            or (callspec is not None and callspec.params.get("stack") == "cluster"))


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)
        if _on_the_cluster(item) and item.get_closest_marker("xdist_group") is None:
            # Under --dist loadgroup one process runs every test on the private Redis
            # Cluster: one cluster, cluster stack and Celery worker, not one per process.
            # (A chaos scenario keeps the group its conftest gave it first.) pytest is
            # pinned below 9.2, where pytest-xdist 3.8 ignores every xdist_group
            # (pytest-xdist issue 1386).
            item.add_marker(pytest.mark.xdist_group("redis-cluster"))
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    # A stable sort: every other test keeps its collection order, after these.
    items.sort(key=lambda item: rank.get(
        Path(str(item.fspath)).relative_to(TESTS_DIR).as_posix(), len(rank)))


@pytest.fixture(scope="session")
def session_stack() -> Iterator[Stack]:
    with isolated_stack() as stack:
        yield stack


@pytest.fixture(scope="session")
def cluster_session_stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A second isolated stack whose counts live on the session's private Redis Cluster."""
    cluster: RedisClusterUnderTest = request.getfixturevalue("redis_cluster")
    with isolated_stack(redis_cluster=cluster) as stack:
        yield stack


@pytest.fixture
def stack(request: pytest.FixtureRequest) -> Stack:
    """The session's isolated stack, emptied before the test.

    ``@on_single_redis_and_cluster`` (tests/support/redis_cluster.py) runs a test
    twice: on this stack, and on the one whose counts live on a Redis Cluster.
    """
    on_cluster = getattr(request, "param", "single") == "cluster"
    chosen: Stack = request.getfixturevalue(
        "cluster_session_stack" if on_cluster else "session_stack")
    chosen.reset()
    return chosen
