"""What a chaos test reads while a fault is on: queue counts and raw rows, never via the workers."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.integration.ingest_support import queue_counts, raw_rows

__all__ = ["queue_counts", "raw_rows", "wait_until"]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> float:
    """Wait (bounded) until ``condition()``; return the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - started
