from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# Fixtures shared by every module. Defined here once: a session-scoped fixture
# imported into several test modules becomes one instance per module, which
# started a Celery worker per module, all competing for the same queue.
from tests.support.celery_worker import celery_worker, session_worker  # noqa: F401
from tests.support.minute_checks import aggregate_writer  # noqa: F401
from tests.support.stack import Stack, isolated_stack

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def session_stack() -> Iterator[Stack]:
    with isolated_stack() as stack:
        yield stack


@pytest.fixture
def stack(session_stack: Stack) -> Stack:
    """The session's isolated stack, emptied before the test."""
    session_stack.reset()
    return session_stack
