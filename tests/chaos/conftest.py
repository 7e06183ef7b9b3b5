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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Conftest hooks see every collected item, not only this directory's.
    for item in items:
        if CHAOS_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="package")
def chaos_stack() -> Iterator[Stack]:
    with isolated_stack() as stack:
        yield stack


@pytest.fixture
def stack(chaos_stack: Stack) -> Stack:
    """The chaos package's own stack, emptied before the test."""
    chaos_stack.reset()
    return chaos_stack
