"""FARLOOM_QUEUE_TYPE on the real broker: quorum queues, their delivery limit, mismatches.

Each test makes a vhost of its own (isolated_stack): a queue's type is fixed
when it is first declared, so the tests must not share queues.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

from farloom_tasks.stores import topology
from tests.integration.ingest_support import assert_exact, one_click_stream, run_burst
from tests.support.broker import dead_letters, publish, queue_counts
from tests.support.database import raw_rows
from tests.support.stack import PROJECT_ROOT, Stack, isolated_stack, rabbitmqctl
from tests.support.waiting import wait_for

LIMIT = 2  # deliveries a quorum queue allows in these tests


@pytest.fixture
def quorum_stack() -> Iterator[Stack]:
    with isolated_stack(queue_type="quorum", quorum_delivery_limit=LIMIT) as made:
        made.reset()  # declares the topology, quorum
        yield made


@pytest.fixture
def classic_stack() -> Iterator[Stack]:
    with isolated_stack() as made:
        made.reset()
        yield made


def queue_table(stack: Stack) -> dict[str, tuple[str, dict[str, Any]]]:
    """queue -> (type, arguments) as the broker lists them."""
    listed = rabbitmqctl("list_queues", "-p", stack.vhost, "--no-table-headers",
                         "name", "type", "arguments")
    rows = (line.split("\t") for line in listed.splitlines())
    # rabbitmqctl prints the arguments as [{"name",value},...]
    return {row[0]: (row[1], dict(json.loads(row[2].replace("{", "[").replace("}", "]"))))
            for row in rows if len(row) == 3}


def farloom(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "farloom_tasks.cli", *args], env=stack.env,
                          cwd=PROJECT_ROOT, text=True, capture_output=True, timeout=120)


def test_quorum_queues_get_a_delivery_limit_and_their_dead_letter_exchange(
        quorum_stack: Stack) -> None:
    table = queue_table(quorum_stack)

    assert {name: kind for name, (kind, _) in table.items()} == {
        topology.INGEST_QUEUE: "quorum", topology.DEAD_QUEUE: "quorum",
        topology.AGGREGATES_QUEUE: "quorum", topology.AGGREGATES_DEAD_QUEUE: "quorum",
        topology.TASKS_QUEUE: "quorum"}
    for queue, dead_exchange in ((topology.INGEST_QUEUE, topology.DEAD_EXCHANGE),
                                 (topology.AGGREGATES_QUEUE, topology.AGGREGATES_DEAD_EXCHANGE)):
        assert table[queue][1] == {
            "x-queue-type": "quorum", "x-delivery-limit": LIMIT,
            "x-dead-letter-exchange": dead_exchange,
            "x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
    for queue in (topology.DEAD_QUEUE, topology.AGGREGATES_DEAD_QUEUE, topology.TASKS_QUEUE):
        assert table[queue][1] == {"x-queue-type": "quorum"}


def _one_click(stack: Stack) -> bytes:
    body = one_click_stream(1, time.time(), prefix="poison").bodies[0]
    publish(stack, [body])
    return body


def test_a_message_requeued_past_the_delivery_limit_is_dead_lettered_with_its_reason(
        quorum_stack: Stack) -> None:
    body = _one_click(quorum_stack)
    connection = quorum_stack.amqp()
    try:
        channel = connection.channel()
        deliveries = 0
        while True:  # a consumer that always gives the message back
            method, _, got = channel.basic_get(topology.INGEST_QUEUE)
            if method is None:
                break
            assert got == body
            deliveries += 1
            channel.basic_nack(method.delivery_tag, requeue=True)
            assert deliveries <= LIMIT + 1, "the delivery limit never dead-lettered it"
    finally:
        connection.close()

    letters = wait_for("the dead letter", lambda: dead_letters(quorum_stack))
    assert deliveries == LIMIT + 1
    assert [got for got, _ in letters] == [body]
    headers = letters[0][1]
    assert headers["x-first-death-reason"] == "delivery_limit"
    assert headers["x-first-death-queue"] == topology.INGEST_QUEUE
    assert topology.dead_letter_reason(headers) == ("delivery_limit", (
        f"delivered more often than the delivery limit of {topology.INGEST_QUEUE}"))


def test_a_click_whose_ingest_worker_keeps_dying_ends_in_the_dead_queue_not_in_a_loop(
        quorum_stack: Stack) -> None:
    body = _one_click(quorum_stack)
    codes = []
    for _ in range(LIMIT + 3):  # each worker SIGKILLs itself before its first commit
        done = subprocess.run(
            [sys.executable, "-m", "farloom_tasks.cli", "ingest", "--burst",
             "--idle-seconds", "0.5"], env={**quorum_stack.env,
                                            "FARLOOM_FAILPOINTS": "before_commit:1"},
            cwd=PROJECT_ROOT, text=True, capture_output=True, timeout=120)
        codes.append(done.returncode)
        if done.returncode == 0:
            break

    assert codes == [-9] * (LIMIT + 1) + [0]  # the last found the queue empty
    assert raw_rows(quorum_stack) == 0
    letters = dead_letters(quorum_stack)
    assert [got for got, _ in letters] == [body]
    assert letters[0][1]["x-first-death-reason"] == "delivery_limit"
    assert queue_counts(quorum_stack) == (0, 0)


def test_the_ingest_worker_consumes_quorum_queues_exactly(quorum_stack: Stack) -> None:
    stream = one_click_stream(300, time.time())
    publish(quorum_stack, stream.bodies)

    run_burst(quorum_stack)

    assert_exact(quorum_stack, stream)
    assert dead_letters(quorum_stack) == []


def _no_traceback(done: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in done.stderr
    assert "ChannelClosed" not in done.stderr


@pytest.mark.parametrize("command", [("ingest", "--burst"), ("write-aggregates", "--burst"),
                                     ("generate", "--count", "10")])
def test_starting_quorum_on_classic_queues_stops_with_what_to_do(
        classic_stack: Stack, command: tuple[str, ...]) -> None:
    done = farloom(classic_stack.with_settings(queue_type="quorum"), *command)

    assert done.returncode == 3, done.stderr
    _no_traceback(done)
    message = done.stderr
    for queue in (topology.INGEST_QUEUE, topology.DEAD_QUEUE, topology.AGGREGATES_QUEUE,
                  topology.AGGREGATES_DEAD_QUEUE, topology.TASKS_QUEUE):
        assert (f"queue '{queue}' in vhost '{classic_stack.vhost}' is a classic queue; "
                "the settings want quorum") in message
    assert "FARLOOM_QUEUE_TYPE=quorum" in message
    assert "docs/operations.md" in message and "rabbitmqctl delete_queue" in message
    # Nothing was made or changed: the queues are still classic.
    assert {kind for kind, _ in queue_table(classic_stack).values()} == {"classic"}


def test_starting_classic_on_quorum_queues_stops_with_what_to_do(quorum_stack: Stack) -> None:
    done = farloom(quorum_stack.with_settings(queue_type="classic"), "ingest", "--burst")

    assert done.returncode == 3, done.stderr
    _no_traceback(done)
    assert (f"queue '{topology.INGEST_QUEUE}' in vhost '{quorum_stack.vhost}' is a quorum "
            "queue; the settings want classic") in done.stderr


def test_another_delivery_limit_on_existing_quorum_queues_is_named(quorum_stack: Stack) -> None:
    done = farloom(quorum_stack.with_settings(quorum_delivery_limit=LIMIT + 5),
                   "ingest", "--burst")

    assert done.returncode == 3, done.stderr
    _no_traceback(done)
    assert (f"queue '{topology.INGEST_QUEUE}' in vhost '{quorum_stack.vhost}' is a quorum "
            f"queue whose x-delivery-limit is {LIMIT}, wanted {LIMIT + 5}") in done.stderr
    assert f"queue '{topology.DEAD_QUEUE}'" not in done.stderr  # it has no limit


def test_status_reads_queue_depths_whatever_their_type(quorum_stack: Stack) -> None:
    _one_click(quorum_stack)
    for queue_type in ("quorum", "classic"):
        done = farloom(quorum_stack.with_settings(queue_type=queue_type), "status", "--json")
        report: dict[str, Any] = json.loads(done.stdout)
        assert report["queues"][topology.INGEST_QUEUE] == 1, done.stdout


def test_the_documented_migration_from_classic_to_quorum_loses_no_click(
        classic_stack: Stack) -> None:
    """docs/operations.md, "Queue type": drain, delete the empty queues, restart quorum."""
    before = one_click_stream(400, time.time(), prefix="before")
    publish(classic_stack, before.bodies)
    # 1. publishers stopped (nothing more is published); 2. drain ingest.
    run_burst(classic_stack)
    assert queue_counts(classic_stack) == (0, 0)
    # 3. delete every queue, refusing any that still holds a message.
    for queue in (topology.INGEST_QUEUE, topology.DEAD_QUEUE, topology.AGGREGATES_QUEUE,
                  topology.AGGREGATES_DEAD_QUEUE, topology.TASKS_QUEUE):
        rabbitmqctl("delete_queue", "-p", classic_stack.vhost, queue, "--if-empty")
    # 4. restart with FARLOOM_QUEUE_TYPE=quorum: the first program declares them anew.
    quorum = classic_stack.with_settings(queue_type="quorum")
    after = one_click_stream(400, time.time(), prefix="after", seed=2)
    publish(quorum, after.bodies)
    run_burst(quorum)

    assert {kind for kind, _ in queue_table(quorum).values()} == {"quorum"}
    both = one_click_stream(0, time.time())
    for part in (before, after):
        both.click_ids |= part.click_ids
        both.expected.update(part.expected)
    assert_exact(quorum, both)


def test_delete_if_empty_refuses_a_queue_that_still_holds_clicks(classic_stack: Stack) -> None:
    _one_click(classic_stack)

    with pytest.raises(subprocess.CalledProcessError):
        rabbitmqctl("delete_queue", "-p", classic_stack.vhost, topology.INGEST_QUEUE,
                    "--if-empty")

    assert queue_counts(classic_stack) == (1, 0)


def test_a_broker_url_list_fails_over_past_a_node_that_is_down(quorum_stack: Stack) -> None:
    from tests.support.ports import free_port

    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/{quorum_stack.vhost}"
    stack = quorum_stack.with_settings(amqp_url=f"{dead},{quorum_stack.settings.amqp_url}")
    stream = one_click_stream(50, time.time())
    connection = stack.amqp()  # topology.connect takes the list
    assert isinstance(connection, pika.BlockingConnection)
    connection.close()

    assert farloom(stack, "generate", "--count", "50").returncode == 0  # SelectConnection
    publish(stack, stream.bodies)
    run_burst(stack)

    assert raw_rows(stack) == 100


def test_celery_fails_over_along_the_same_broker_list(quorum_stack: Stack) -> None:
    from farloom_tasks.celery import make_app
    from tests.support.ports import free_port

    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/{quorum_stack.vhost}"
    app = make_app(quorum_stack.with_settings(
        amqp_url=f"{dead},{quorum_stack.settings.amqp_url}").settings)

    with app.connection_for_write() as connection:
        connection.ensure_connection(max_retries=3, interval_start=0)
        assert connection.as_uri().split("@")[1] == quorum_stack.settings.amqp_url.split("@")[1]


def test_rabbitmq_refuses_delete_if_empty_on_a_quorum_queue(quorum_stack: Stack) -> None:
    # docs/operations.md: moving back to classic checks the depth by hand instead.
    said = subprocess.run(["rabbitmqctl", "-q", "delete_queue", "-p", quorum_stack.vhost,
                           topology.INGEST_QUEUE, "--if-empty"], capture_output=True,
                          text=True, timeout=60, check=False)

    assert "not supported by quorum queues" in said.stdout + said.stderr
    assert queue_table(quorum_stack)[topology.INGEST_QUEUE][0] == "quorum"


def test_the_bench_environment_declares_and_passes_on_the_configured_queue_type() -> None:
    from dataclasses import replace

    from farloom_tasks.bench.env import describe_machine, isolated_bench_env
    from farloom_tasks.settings import Settings

    with isolated_bench_env(replace(Settings.from_env({}), queue_type="quorum")) as env:
        bench_stack = Stack(settings=env.settings, run_id="bench", vhost=env.vhost, redis_db=0)
        kinds = {kind for kind, _ in queue_table(bench_stack).values()}
        worker_env = env.subprocess_env()
        machine = dict(describe_machine(env.settings))

    assert kinds == {"quorum"}
    assert worker_env["FARLOOM_QUEUE_TYPE"] == "quorum"  # the bench's workers and Celery
    assert machine["RabbitMQ"].endswith(", quorum queues")


@pytest.mark.parametrize("program", [("worker", "--pool", "solo", "--without-mingle",
                                      "--without-gossip"), ("beat",)])
def test_a_celery_worker_or_beat_on_queues_of_the_other_type_exits_with_what_to_do(
        classic_stack: Stack, program: tuple[str, ...], tmp_path: Path) -> None:
    extra = ("--schedule", str(tmp_path / "beat-schedule")) if program == ("beat",) else ()
    done = subprocess.run([sys.executable, "-m", "celery", "-A", "farloom_tasks", *program,
                           *extra], env=classic_stack.with_settings(queue_type="quorum").env,
                          cwd=PROJECT_ROOT, text=True, capture_output=True, timeout=120)

    assert done.returncode == 3, done.stderr[-2000:]
    assert (f"queue '{topology.TASKS_QUEUE}' in vhost '{classic_stack.vhost}' is a classic "
            "queue; the settings want quorum") in done.stderr
    _no_traceback(done)
