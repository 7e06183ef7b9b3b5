"""``farloom status``: pipeline health for people and healthchecks (exit 1 = unhealthy)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from farloom_tasks.cli.hints import HINTS  # the same advice the CLI gives on these errors
from farloom_tasks.core.health import assess
from farloom_tasks.errors import BrokerUnavailable, DatabaseUnavailable, RedisUnavailable
from farloom_tasks.pipeline import status
from farloom_tasks.settings import Settings
from farloom_tasks.stores import db

DEFAULT_STATE = "~/.local/state/farloom/status.json"


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--preflight", action="store_true",
                        help="only check that PostgreSQL, Redis and RabbitMQ answer, and say "
                             "how to start any that does not (used before `make run`)")
    parser.add_argument("--no-celery", action="store_true",
                        help="do not ping the Celery workers")
    parser.add_argument("--state", default=DEFAULT_STATE,
                        help="file remembering the last dead-letter count, so that a growing "
                             f"count is noticed between runs (default: {DEFAULT_STATE})")


def run(args: argparse.Namespace, settings: Settings) -> int:
    # pika narrates every connection at INFO and logs a refused one as an ERROR with
    # a traceback; this command reports unreachable services itself, in a sentence.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    now = time.time()
    engine = db.make_engine(settings.database_url, pool_size=1)
    try:
        snapshot = status.collect(engine=engine, amqp_url=settings.amqp_url,
                                  redis_url=settings.redis_url,
                                  redis_cluster=settings.redis_cluster, now=now,
                                  ask_celery=not (args.no_celery or args.preflight))
    finally:
        engine.dispose()
    if args.preflight:
        return _preflight(snapshot)
    state = Path(args.state).expanduser()
    verdict = assess(snapshot, now=now, max_lag_seconds=settings.status_max_lag_seconds,
                            previous_dead_letters=_previous_dead(state))
    _remember_dead(state, snapshot.dead_letters)
    doc = status.report(snapshot, verdict)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        _print_text(doc)
    return 0 if verdict.healthy else 1


def _preflight(snapshot: status.Snapshot) -> int:
    kinds = {"postgresql": DatabaseUnavailable, "redis": RedisUnavailable,
             "rabbitmq": BrokerUnavailable}
    for service, error in sorted(snapshot.unreachable.items()):
        print(f"{service} is unreachable: {error}", file=sys.stderr)
        if service == "postgresql" and "does not exist" in error:
            print("  The database or its tables are missing: run `farloom migrate`.",
                  file=sys.stderr)
        else:
            print(f"  {HINTS[kinds[service]]}", file=sys.stderr)
    return 1 if snapshot.unreachable else 0


def _print_text(doc: dict[str, Any]) -> None:
    def show(value: object, unit: str = "") -> str:
        return "unknown" if value is None else f"{value}{unit}"

    workers: list[str] | None = doc["celery_workers"]
    memory: int | None = doc["redis_used_memory_bytes"]
    print(f"healthy:              {'yes' if doc['healthy'] else 'NO'}")
    print(f"last closed minute:   {show(doc['closed_minute'])} "
          f"(lag {show(doc['lag_seconds'], ' s')})")
    print(f"last written minute:  {show(doc['written_minute'])}")
    print(f"late minutes pending: {show(doc['late_minutes_pending'])}")
    for queue, depth in doc["queues"].items():
        print(f"queue {queue + ':':<27} {depth}")
    print("celery workers:       "
          + ("no Celery app" if workers is None else ", ".join(workers) or "none answered"))
    print("redis memory:         "
          + ("unknown" if memory is None else f"{memory / 1_048_576:.1f} MiB"))
    rejected: dict[str, Any] | None = doc["rejected_clicks"]
    if rejected is None:
        print("rejected clicks:      unknown")
    else:
        reasons = ", ".join(f"{code} {n}" for code, n in rejected["per_reason"].items())
        print(f"rejected clicks:      {rejected['total']} in the last "
              f"{rejected['window_minutes']} minutes" + (f" ({reasons})" if reasons else ""))
    for problem in doc["problems"]:
        print(f"problem: {problem}")


def _previous_dead(state: Path) -> int | None:
    try:
        value = json.loads(state.read_text()).get("dead_letters")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def _remember_dead(state: Path, dead: int | None) -> None:
    if dead is None:
        return
    try:
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"dead_letters": dead}))
    except OSError:
        pass  # a read-only filesystem only costs the growth check
