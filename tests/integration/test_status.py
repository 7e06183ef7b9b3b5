"""`farloom status` as a person and a healthcheck see it: real services, real exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from farloom_tasks import processes
from farloom_tasks.core.clicks import Rejection
from farloom_tasks.core.messages import DeadLetter
from farloom_tasks.core.windows import iso, minute_of, to_datetime
from farloom_tasks.stores import rejected_clicks, topology
from farloom_tasks.stores.transactions import transaction
from tests.support.stack import PROJECT_ROOT, Stack, isolated_stack


def close_minute(stack: Stack, minute: int) -> None:
    with stack.engine().begin() as conn:
        conn.execute(sa.text("INSERT INTO agg.minute_closes (minute, started_revision, "
                             "published_revision) VALUES (:m, 1, 1)"),
                     {"m": to_datetime(minute)})
        conn.execute(sa.text("INSERT INTO agg.late_minutes (minute, late_clicks) "
                             "VALUES (:m, 2)"), {"m": to_datetime(minute - 600)})


def dead_letter(stack: Stack, count: int) -> None:
    connection = stack.amqp()
    try:
        channel = connection.channel()
        topology.declare(channel, topology.QueueType.of(stack.settings))
        for _ in range(count):
            channel.basic_publish("", topology.DEAD_QUEUE, b"not json")
    finally:
        connection.close()


def reject(stack: Stack, rejections: list[tuple[str, str, float]]) -> None:
    """Ledger rows as ingest writes them: (source id, reason code, rejected at)."""
    engine = stack.engine()
    try:
        with transaction(engine) as cursor:
            for source_id, code, at in rejections:
                rejected_clicks.record(cursor, [DeadLetter(b"{}", Rejection(code, "why"), 0,
                                                           source_id)], at)
    finally:
        engine.dispose()


def farloom_status(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "farloom_tasks.cli", "status", "--no-celery",
                           *args], env=env, cwd=PROJECT_ROOT, text=True, capture_output=True,
                          timeout=60)


def status(stack: Stack, state: Path,
           env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = farloom_status(env or stack.env, "--json", "--state", str(state))
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def test_a_pipeline_that_closed_its_last_minute_is_healthy_and_reported_in_full(
        stack: Stack, tmp_path: Path) -> None:
    closed = minute_of(time.time()) - 60
    close_minute(stack, closed)
    dead_letter(stack, 2)

    code, doc = status(stack, tmp_path / "state.json")

    assert code == 0, doc["problems"]
    assert doc["closed_minute"] == iso(closed)
    assert 0 <= doc["lag_seconds"] <= 61
    assert doc["late_minutes_pending"] == 1
    assert doc["queues"] == {topology.INGEST_QUEUE: 0, topology.AGGREGATES_QUEUE: 0,
                             topology.DEAD_QUEUE: 2, topology.AGGREGATES_DEAD_QUEUE: 0}
    assert doc["dead_letters"] == 2
    assert doc["redis_used_memory_bytes"] > 0
    assert doc["rejected_clicks"] == {"window_minutes": 60, "total": 0, "per_reason": {},
                                      "per_minute": []}


def test_status_counts_the_ledgers_rejected_clicks_per_reason_over_the_last_hour(
        stack: Stack, tmp_path: Path) -> None:
    now = time.time()
    close_minute(stack, minute_of(now) - 60)
    recent, earlier = minute_of(now) - 60, minute_of(now) - 20 * 60
    reject(stack, [("m1", "missing_field", recent + 1), ("m2", "missing_field", recent + 2),
                   ("m3", "future_timestamp", recent + 3), ("m4", "missing_field", earlier),
                   ("m5", "missing_field", now - 2 * 3600)])  # outside the hour

    code, doc = status(stack, tmp_path / "state.json")
    text = farloom_status(stack.env, "--state", str(tmp_path / "state.json")).stdout

    assert code == 0, doc["problems"]
    assert doc["rejected_clicks"] == {
        "window_minutes": 60, "total": 4,
        "per_reason": {"future_timestamp": 1, "missing_field": 3},
        "per_minute": [{"minute": iso(earlier), "per_reason": {"missing_field": 1}},
                       {"minute": iso(recent),
                        "per_reason": {"future_timestamp": 1, "missing_field": 2}}]}
    assert ("rejected clicks:      4 in the last 60 minutes "
            "(future_timestamp 1, missing_field 3)") in text


def test_a_last_closed_minute_older_than_the_threshold_makes_status_fail(
        stack: Stack, tmp_path: Path) -> None:
    close_minute(stack, minute_of(time.time()) - 600)
    env = dict(stack.env, FARLOOM_STATUS_MAX_LAG_SECONDS="120")

    code, doc = status(stack, tmp_path / "state.json", env=env)

    assert code == 1
    assert any("more than the 120 s allowed" in p for p in doc["problems"])


def test_growing_dead_letters_between_two_runs_make_the_second_fail(
        stack: Stack, tmp_path: Path) -> None:
    close_minute(stack, minute_of(time.time()) - 60)
    state = tmp_path / "state.json"
    first, _ = status(stack, state)
    dead_letter(stack, 3)

    second, doc = status(stack, state)
    third, _ = status(stack, state)

    assert (first, second, third) == (0, 1, 0)
    assert "dead letters are growing: 0 -> 3" in doc["problems"]


def test_an_unreachable_service_is_named_and_fails_the_check(
        stack: Stack, tmp_path: Path) -> None:
    close_minute(stack, minute_of(time.time()) - 60)
    env = dict(stack.env, FARLOOM_REDIS_URL="redis://127.0.0.1:1/0")

    code, doc = status(stack, tmp_path / "state.json", env=env)
    text = farloom_status(env, "--state", str(tmp_path / "s2"))

    assert code == 1
    assert [p for p in doc["problems"] if p.startswith("redis is unreachable")]
    assert doc["queues"][topology.INGEST_QUEUE] == 0  # the others were still asked
    assert text.returncode == 1 and "healthy:              NO" in text.stdout
    assert "Traceback" not in text.stderr


def test_the_preflight_names_the_unreachable_service_and_how_to_start_it(
        stack: Stack) -> None:
    fine = farloom_status(stack.env, "--preflight")
    down = farloom_status(dict(stack.env, FARLOOM_AMQP_URL="amqp://guest:guest@127.0.0.1:1/x"),
                          "--preflight")

    assert fine.returncode == 0, fine.stderr
    assert down.returncode == 1
    assert "rabbitmq is unreachable" in down.stderr
    assert "rabbitmq-server -detached" in down.stderr
    assert "Traceback" not in down.stderr


def test_celery_workers_are_pinged_and_none_answering_fails_the_check(tmp_path: Path) -> None:
    # A stack of its own: the session's stack may have a Celery worker answering pings.
    with isolated_stack() as stack:
        _check_celery_ping(stack, tmp_path)


def _check_celery_ping(stack: Stack, tmp_path: Path) -> None:
    close_minute(stack, minute_of(time.time()) - 60)

    def with_celery() -> tuple[int, dict[str, Any]]:
        result = subprocess.run(
            [sys.executable, "-m", "farloom_tasks.cli", "status", "--json", "--state",
             str(tmp_path / "state.json")], env=stack.env, cwd=PROJECT_ROOT, text=True,
            capture_output=True, timeout=60)
        return result.returncode, json.loads(result.stdout)

    alone, alone_doc = with_celery()
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "farloom_tasks", "worker", "--pool", "solo",
         "--hostname", f"status-test-{stack.run_id}@%h", "--without-gossip",
         "--without-mingle"], env=stack.env, cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            code, doc = with_celery()
            if doc["celery_workers"] or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        processes.stop(worker, grace=20)

    assert alone == 1 and "no Celery worker answered the ping" in alone_doc["problems"]
    assert code == 0, doc["problems"]
    assert doc["celery_workers"]
    assert all(name.startswith(f"status-test-{stack.run_id}@") for name in doc["celery_workers"])
