"""The ingest worker's writer threads: each one alone owns a DurableSink's connections.

A batch is written on one writer thread while the main thread keeps serving
the broker connection (pika's connection is not thread-safe, so only the main
thread touches it). A writer takes one write at a time, which is what lets
in_order_acks hand a writer back only once its write has ended.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from farloom_tasks.pipeline.ingest_sink import DurableSink
from farloom_tasks.settings import Settings

log = logging.getLogger("farloom.ingest")
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Writer:
    """A writer thread and the sink (connections) only it uses."""

    sink: DurableSink
    executor: ThreadPoolExecutor

    def submit(self, work: Callable[..., T], *args: Any, wake: Callable[[], None]) -> Future[T]:
        """Run ``work(*args)`` on this writer's thread; ``wake()`` once it has ended.

        ``wake`` is how the main thread learns of it at once (it ends a wait on the
        broker connection); if it fails, nobody is waiting any more.
        """
        future = self.executor.submit(work, *args)

        def done(_: Future[T]) -> None:
            with contextlib.suppress(Exception):
                wake()

        future.add_done_callback(done)
        return future


def start_writers(settings: Settings, stop: threading.Event) -> list[Writer]:
    """``settings.ingest_writers`` writers, each with its own sink and thread."""
    return [Writer(DurableSink(settings, stop),
                   ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ingest-writer-{n}"))
            for n in range(settings.ingest_writers)]


def close_writers(writers: list[Writer]) -> None:
    """Delete the outbox rows already applied, then stop each thread and close its sink."""
    for writer in writers:
        try:
            if writer.sink.cleanup_due:
                writer.executor.submit(writer.sink.cleanup).result(timeout=60)
        except Exception as exc:  # the rows stay; any drain deletes them later
            log.warning("could not delete applied outbox rows: %s", exc)
        finally:
            writer.executor.shutdown(wait=True)
            writer.sink.close()
