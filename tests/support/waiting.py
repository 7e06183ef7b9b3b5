"""Bounded waits: poll a condition, fail saying what never happened. Nothing asserts speed."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

WAIT_SECONDS = 90.0  # the default bound; a healthy run needs a few seconds


def wait_for(what: str, check: Callable[[], T | None], timeout: float = WAIT_SECONDS, *,
             poll: float = 0.1, context: Callable[[], str] | None = None) -> T:
    """Poll ``check`` until it returns something truthy; return that.

    On timeout, fail naming ``what``, with ``context()`` (say, process logs) appended.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n"
                                 + (context() if context else ""))
        time.sleep(poll)


def seconds_until(what: str, check: Callable[[], object], timeout: float = WAIT_SECONDS, *,
                  poll: float = 0.1, context: Callable[[], str] | None = None) -> float:
    """Wait as ``wait_for`` does; return the seconds it took."""
    started = time.monotonic()
    wait_for(what, check, timeout, poll=poll, context=context)
    return time.monotonic() - started
