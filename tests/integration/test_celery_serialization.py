"""Celery accepts only JSON: a pickled task message is refused unread, a JSON one runs.

Pickle executes code while it loads. The message below names a real Farloom
task (``farloom.reconcile``, which records a row in agg.reconciliation_runs
when it runs) and carries an argument whose unpickling would create a
directory. The real worker must neither run the task nor unpickle the body.
"""

from __future__ import annotations

import os
import pickle
import uuid
from pathlib import Path
from typing import Any

import pika
import pytest

from farloom_tasks import celery as farloom_celery
from tests.support.broker import queue_counts
from tests.support.database import sql
from tests.support.stack import Stack
from tests.support.waiting import wait_for

pytestmark = pytest.mark.usefixtures("celery_worker")


class _MakesADirectoryWhenUnpickled:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (str(self.path),)


def _publish_pickled_task(stack: Stack, task: str, args: tuple[Any, ...],
                          payload: Any) -> None:
    """A Celery protocol-2 task message, serialized with pickle, straight onto the queue."""
    task_id = str(uuid.uuid4())
    connection = stack.amqp()
    try:
        channel = connection.channel()
        channel.queue_declare(farloom_celery.TASK_QUEUE, durable=True)
        channel.basic_publish(
            "", farloom_celery.TASK_QUEUE,
            # The payload rides in the embed mapping, which Celery ignores beyond its own
            # keys: were pickle accepted, the task would run *and* the payload load.
            pickle.dumps((args, {}, {"callbacks": None, "errbacks": None, "chain": None,
                                     "chord": None, "payload": payload})),
            pika.BasicProperties(
                content_type="application/x-python-serialize", content_encoding="binary",
                correlation_id=task_id, delivery_mode=2, priority=0,
                headers={"lang": "py", "task": task, "id": task_id, "root_id": task_id,
                         "parent_id": None, "group": None, "retries": 0, "eta": None,
                         "expires": None, "argsrepr": repr(args), "kwargsrepr": "{}",
                         "origin": "attacker@nowhere"}))
    finally:
        connection.close()


def test_a_pickled_task_message_is_refused_unread_while_a_json_one_runs(
        stack: Stack, tmp_path: Path) -> None:
    from farloom_tasks import tasks

    marker = tmp_path / "unpickled"
    _publish_pickled_task(stack, "farloom.reconcile", (0, 0, "pickled"),
                          _MakesADirectoryWhenUnpickled(marker))
    # The same task, sent the normal way (JSON) after the pickled one: it runs.
    tasks.reconcile.delay(0, 0, "json").get(timeout=60)
    # Taken off the queue (every session worker of this vhost competes for it), so
    # a worker has seen it: had it been accepted, it would have run and loaded.
    wait_for("a worker to take the pickled message off the queue",
             lambda: queue_counts(stack, farloom_celery.TASK_QUEUE) == (0, 0))

    triggers = [row[0] for row in sql(stack, "SELECT trigger FROM agg.reconciliation_runs")]
    assert triggers == ["json"]
    assert not marker.exists(), "the pickled body was loaded: it ran code"
