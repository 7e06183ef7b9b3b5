"""``farloom bench aggregate``: closing one big minute, against PostgreSQL alone.

The workload is one minute of ``--clicks`` clicks over exactly ``--ads`` ads
(each ad at least once, the rest Zipf), loaded straight into ``raw.ad_clicks``
(COPY) and the per-shard Redis sorted sets (pipelined), in an isolated
environment (``bench/env.py``). Then the real pipeline runs as subprocesses: a Celery
worker, Celery beat (whose ``close_due_minutes`` tick closes the minute) and
the aggregated writer. The grace period is chosen so that the minute's
deadline falls a warm-up after loading; the delays are measured from that
deadline until the top k, and then every per-ad count, are committed in agg.

Compared in the same run:
- PostgreSQL only: one transaction of INSERT ... SELECT ... GROUP BY over
  ``raw.ad_clicks`` writing the same three tables. Its duration is reported as
  its delay, i.e. as if it started exactly at the deadline (favouring it).
- Replay from raw: ``replay.rebuild_from_raw`` alone (raw clicks/s), and the
  whole ``farloom.replay_minute`` task until the new revision is final in agg,
  ``--replays`` times; the target is judged on the median replay.
Every result is checked against the workload's own counts before it is reported.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from tqdm import tqdm

from farloom_tasks import processes as child_processes
from farloom_tasks.bench.env import BenchEnv, describe_machine, isolated_bench_env
from farloom_tasks.bench.options import AggregateOptions
from farloom_tasks.bench.report import (
    DOCS_PATH,
    machine_markdown,
    replace_section,
    slower_middle,
)
from farloom_tasks.core.shards import shard_of
from farloom_tasks.core.topk import AdCount, top_k
from farloom_tasks.core.windows import MINUTE, iso, minute_of
from farloom_tasks.errors import BenchFailed, FarloomError
from farloom_tasks.pipeline import replay
from farloom_tasks.settings import Settings
from farloom_tasks.stores import db, redis_counts
from farloom_tasks.stores.migrations import PROJECT_ROOT
from farloom_tasks.stores.raw import RawStore

SECTION = "aggregate"
POLL_SECONDS = 0.01  # s between looks at agg while timing; the figures' resolution
COPY_ROWS = 50_000  # rows per COPY chunk
REDIS_BATCH = 10_000  # members per pipelined ZADD batch
STOP_GRACE = 20.0  # s a stopped worker (and its prefork pool) gets before SIGKILL


@dataclass(frozen=True)
class Workload:
    minute: int
    counts: dict[str, int]  # ad_id -> clicks

    @property
    def clicks(self) -> int:
        return sum(self.counts.values())


def zipf_counts(clicks: int, ads: int, exponent: float) -> list[int]:
    """Clicks per ad rank: one each, the rest in proportion to 1/rank**exponent. Pure."""
    if not 1 <= ads <= clicks:
        raise BenchFailed(f"need 1 <= --ads ({ads}) <= --clicks ({clicks})")
    weights = [1.0 / rank**exponent for rank in range(1, ads + 1)]
    rest, total = clicks - ads, sum(weights)
    counts = [1 + int(rest * w / total) for w in weights]
    for rank in range(clicks - sum(counts)):  # the rounding remainder goes to the head
        counts[rank % ads] += 1
    return counts


def make_workload(minute: int, clicks: int, ads: int, exponent: float, seed: int) -> Workload:
    names = [f"ad-{n:07d}" for n in random.Random(seed).sample(range(10 * ads), ads)]
    return Workload(minute, dict(zip(names, zipf_counts(clicks, ads, exponent), strict=True)))


def _click_rows(workload: Workload, seed: int) -> Iterator[str]:
    """COPY text rows (click_id, ad_id, clicked_at, minute), clicks spread over the minute."""
    ad_of_click = [ad for ad, n in workload.counts.items() for _ in range(n)]
    random.Random(seed).shuffle(ad_of_click)
    start = datetime.fromtimestamp(workload.minute, UTC)
    minute_text = start.strftime("%Y-%m-%d %H:%M:%S+00")
    total = len(ad_of_click)
    for j, ad in enumerate(ad_of_click):
        millis = j * 60_000 // total
        stamp = f"{start.strftime('%Y-%m-%d %H:%M')}:{millis // 1000:02d}.{millis % 1000:03d}+00"
        yield f"bench-{j}\t{ad}\t{stamp}\t{minute_text}\n"


def load(env: BenchEnv, workload: Workload, seed: int) -> None:
    """COPY the clicks into raw and build the per-shard sorted sets and totals."""
    settings = env.settings
    engine = db.make_engine(settings.database_url, pool_size=1)
    try:
        with db.translated_errors():
            conn: Any = engine.raw_connection()
        try:
            rows = _click_rows(workload, seed)
            with tqdm(total=workload.clicks, desc="load raw.ad_clicks", unit="click",
                      file=sys.stderr) as bar, db.translated_errors(), conn.cursor() as cursor:
                while chunk := [row for _, row in zip(range(COPY_ROWS), rows, strict=False)]:
                    cursor.copy_expert("COPY raw.ad_clicks (click_id, ad_id, clicked_at, minute) "
                                       "FROM STDIN", io.StringIO("".join(chunk)))
                    bar.update(len(chunk))
                conn.commit()
                cursor.execute("ANALYZE raw.ad_clicks")
                conn.commit()
        finally:
            conn.close()
    finally:
        engine.dispose()
    client = redis_counts.connect(settings.redis_url)
    counts = redis_counts.RedisCounts(client, settings.redis_retention_seconds)
    counts.ensure_epoch(time.time())
    by_shard: dict[int, list[AdCount]] = {}
    for ad, n in workload.counts.items():
        by_shard.setdefault(shard_of(ad, settings.shard_count), []).append((ad, n))
    with redis_counts.translated_errors(), tqdm(
            total=len(workload.counts), desc="load Redis sorted sets", unit="ad",
            file=sys.stderr) as bar:
        for shard, pairs in by_shard.items():
            key = redis_counts.clicks_key(shard, workload.minute)
            pipe = client.pipeline(transaction=False)
            for i in range(0, len(pairs), REDIS_BATCH):
                pipe.zadd(key, dict(pairs[i:i + REDIS_BATCH]))
                bar.update(len(pairs[i:i + REDIS_BATCH]))
            total = redis_counts.total_key(shard, workload.minute)
            pipe.set(total, sum(n for _, n in pairs))
            pipe.expire(key, settings.redis_retention_seconds)
            pipe.expire(total, settings.redis_retention_seconds)
            pipe.execute()


@contextlib.contextmanager
def _processes(env: BenchEnv, logs: Path, grace: float,
               writers: int) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """The Celery worker, the aggregated writers and Celery beat; stopped on exit."""
    variables = {**env.subprocess_env(), "FARLOOM_GRACE_SECONDS": repr(grace)}
    commands = {
        "worker": [sys.executable, "-m", "celery", "-A", "farloom_tasks", "worker",
                   "-l", "INFO", "-c", str(os.cpu_count() or 2), "-n", f"bench-{env.vhost}@%h",
                   "--without-gossip", "--without-mingle", "--without-heartbeat"],
        **{f"writer-{n}": [sys.executable, "-m", "farloom_tasks.cli", "write-aggregates"]
           for n in range(writers)},
        "beat": [sys.executable, "-m", "celery", "-A", "farloom_tasks", "beat", "-l", "INFO",
                 "-s", str(logs / "beat-schedule")],
    }
    started: dict[str, subprocess.Popen[bytes]] = {}
    handles: list[IO[bytes]] = []
    try:
        for name, command in commands.items():
            handle: IO[bytes] = open(logs / f"{name}.log", "wb")  # noqa: SIM115
            handles.append(handle)
            # Own session: stopping it also stops the prefork children, and only them.
            started[name] = subprocess.Popen(command, env=variables, cwd=PROJECT_ROOT,
                                             stdout=handle, stderr=subprocess.STDOUT,
                                             start_new_session=True)
        yield started
    finally:
        for process in started.values():
            child_processes.stop(process, grace=STOP_GRACE, group=True)
        for handle in handles:
            handle.close()


def _scalar(engine: sa.Engine, sql: str, **params: Any) -> Any:
    with db.translated_errors(), engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def _wait_until(engine: sa.Engine, sql: str, timeout: float, what: str,
                processes: dict[str, subprocess.Popen[bytes]], logs: Path,
                **params: Any) -> float:
    """Poll until ``sql`` returns a true value; returns the wall-clock time it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _scalar(engine, sql, **params):
            return time.time()
        for name, process in processes.items():
            if process.poll() is not None:
                raise BenchFailed(f"the {name} exited ({process.returncode}) while waiting for "
                                  f"{what}; see {logs / (name + '.log')}")
        time.sleep(POLL_SECONDS)
    raise BenchFailed(f"gave up after {timeout:.0f} s waiting for {what}; logs in {logs}")


def check_exact(engine: sa.Engine, workload: Workload, k: int) -> int:
    """Raise unless agg holds exactly the workload's counts; returns the revision."""
    m = workload.minute
    with db.translated_errors(), engine.connect() as conn:
        ads: dict[str, int] = dict(conn.execute(sa.text(
            "SELECT ad_id, clicks FROM agg.ad_clicks_per_minute WHERE minute = to_timestamp(:m)"),
            {"m": m}).all())
        top = [tuple(r) for r in conn.execute(sa.text(
            "SELECT ad_id, clicks FROM agg.top_ads WHERE minute = to_timestamp(:m) ORDER BY rank"),
            {"m": m}).all()]
        totals = conn.execute(sa.text(
            "SELECT clicks, distinct_ads, revision FROM agg.minute_totals "
            "WHERE minute = to_timestamp(:m)"), {"m": m}).one()
    problems = []
    if ads != workload.counts:
        problems.append(f"{len(set(ads.items()) ^ set(workload.counts.items()))} per-ad "
                        "counts differ")
    if top != top_k(workload.counts.items(), k):
        problems.append("the top k differs")
    if (totals[0], totals[1]) != (workload.clicks, len(workload.counts)):
        problems.append(f"totals are {totals[0]} clicks over {totals[1]} ads")
    if problems:
        raise BenchFailed(f"agg is not exact for {iso(m)}: " + "; ".join(problems))
    return int(totals[2])


_PG_ONLY = """
DELETE FROM agg.ad_clicks_per_minute WHERE minute = to_timestamp(%(m)s);
DELETE FROM agg.top_ads WHERE minute = to_timestamp(%(m)s);
DELETE FROM agg.minute_totals WHERE minute = to_timestamp(%(m)s);
"""
_PG_ONLY_TIMED = """
INSERT INTO agg.ad_clicks_per_minute (minute, ad_id, clicks, revision)
SELECT minute, ad_id, count(*), %(r)s FROM raw.ad_clicks
WHERE minute = to_timestamp(%(m)s) GROUP BY minute, ad_id;
INSERT INTO agg.top_ads (minute, rank, ad_id, clicks, revision)
SELECT minute, row_number() OVER (ORDER BY clicks DESC, ad_id COLLATE "C"), ad_id, clicks, %(r)s
FROM agg.ad_clicks_per_minute WHERE minute = to_timestamp(%(m)s)
ORDER BY clicks DESC, ad_id COLLATE "C" LIMIT %(k)s;
INSERT INTO agg.minute_totals (minute, clicks, distinct_ads, revision, computed_at)
SELECT minute, sum(clicks), count(*), %(r)s, now() FROM agg.ad_clicks_per_minute
WHERE minute = to_timestamp(%(m)s) GROUP BY minute;
"""


def postgresql_only(engine: sa.Engine, workload: Workload, k: int, revision: int) -> float:
    """Seconds of one transaction computing the minute from raw alone (then checked)."""
    params = {"m": workload.minute, "r": revision, "k": k}
    with db.translated_errors():
        conn: Any = engine.raw_connection()
    try:
        with db.translated_errors(), conn.cursor() as cursor:
            cursor.execute(_PG_ONLY, params)
            conn.commit()
            started = time.perf_counter()
            cursor.execute(_PG_ONLY_TIMED, params)
            conn.commit()
            elapsed = time.perf_counter() - started
    finally:
        conn.close()
    check_exact(engine, workload, k)
    return elapsed


@dataclass
class Figures:
    top_delay: float  # s from the deadline until the top k was committed
    all_delay: float  # s from the deadline until every per-ad count was committed
    pg_only: float  # s of the PostgreSQL-only transaction
    rebuild_seconds: float  # s of replay.rebuild_from_raw
    # s from sending farloom.replay_minute until its revision was final, per replay
    replay_seconds: list[float]
    warm: bool  # the pipeline had closed an earlier minute before the deadline
    claimed_delay: float  # s from the deadline until the tick claimed the minute
    published_delay: float  # s from the deadline until merge_minute's parts were confirmed
    group_by_seconds: float  # s of the raw GROUP BY alone: the floor of a replay from raw
    load_average: float  # the machine's 1-minute load average when the minute closed


def measure(env: BenchEnv, workload: Workload, options: AggregateOptions,
            logs: Path) -> Figures:
    settings = env.settings
    engine = db.make_engine(settings.database_url, pool_size=1)
    m = workload.minute
    try:
        deadline = time.time() + options.warmup
        grace = deadline - (m + MINUTE)
        print(f"deadline of {iso(m)} in {options.warmup:.0f} s (grace {grace:.1f} s); "
              "starting the Celery worker, beat and the aggregated writer", file=sys.stderr)
        with _processes(env, logs, grace, options.writers) as processes:
            # The first tick closes the (empty) minute before: proof the chain is up.
            warm_at = _wait_until(
                engine, "SELECT 1 FROM agg.minute_totals WHERE minute = to_timestamp(:m)",
                options.timeout, "the pipeline to close the minute before", processes, logs,
                m=m - MINUTE)
            top_at = _wait_until(
                engine, "SELECT 1 FROM agg.top_ads WHERE minute = to_timestamp(:m) LIMIT 1",
                options.timeout + options.warmup, "the top k", processes, logs, m=m)
            all_at = _wait_until(
                engine, "SELECT 1 FROM agg.minute_totals WHERE minute = to_timestamp(:m)",
                options.timeout, "every per-ad count", processes, logs, m=m)
            load_average = os.getloadavg()[0]
            first_revision = check_exact(engine, workload, settings.top_k)
            with db.translated_errors(), engine.connect() as conn:
                claimed_at, published_at = conn.execute(sa.text(
                    "SELECT extract(epoch FROM requested_at)::float8, "
                    "extract(epoch FROM published_at)::float8 FROM agg.minute_closes "
                    "WHERE minute = to_timestamp(:m)"), {"m": m}).one()
            # No reconciliation may replay behind our back.
            child_processes.stop(processes.pop("beat"), grace=STOP_GRACE, group=True)

            raw = RawStore(engine, settings.shard_count)
            counts = redis_counts.RedisCounts(redis_counts.connect(settings.redis_url),
                                              settings.redis_retention_seconds)
            started = time.perf_counter()
            rebuilt = replay.rebuild_from_raw(engine, raw, counts, m, settings.shard_count)
            rebuild_seconds = time.perf_counter() - started
            if (rebuilt.clicks, rebuilt.distinct_ads) != (workload.clicks, len(workload.counts)):
                raise BenchFailed(f"the rebuild from raw found {rebuilt.clicks} clicks over "
                                  f"{rebuilt.distinct_ads} ads")

            from farloom_tasks.celery import make_app  # Celery only for this one send

            app = make_app(replace(settings, grace_seconds=grace))
            replay_seconds: list[float] = []
            replayed_revision = first_revision
            # Several replays, one after the other: a single one swings too much to judge
            # the target on (how much: docs/benchmarks.md, "Figures behind the code").
            for _ in range(options.replays):
                sent = time.perf_counter()
                app.send_task("farloom.replay_minute", args=[m, "raw"])
                _wait_until(engine, "SELECT 1 FROM agg.minute_totals "
                            "WHERE minute = to_timestamp(:m) AND revision > :r",
                            options.timeout, "the replayed revision", processes, logs,
                            m=m, r=replayed_revision)
                replay_seconds.append(time.perf_counter() - sent)
                replayed_revision = check_exact(engine, workload, settings.top_k)
        pg_only = postgresql_only(engine, workload, settings.top_k, replayed_revision + 1)
        return Figures(top_delay=top_at - deadline, all_delay=all_at - deadline,
                       pg_only=pg_only, rebuild_seconds=rebuild_seconds,
                       replay_seconds=replay_seconds, warm=warm_at < deadline,
                       claimed_delay=claimed_at - deadline,
                       published_delay=published_at - deadline,
                       group_by_seconds=_group_by_seconds(engine, m),
                       load_average=load_average)
    finally:
        engine.dispose()


def _group_by_seconds(engine: sa.Engine, minute: int) -> float:
    with db.translated_errors(), engine.connect() as conn:
        started = time.perf_counter()
        conn.execute(sa.text("SELECT ad_id, count(*) FROM raw.ad_clicks "
                             "WHERE minute = to_timestamp(:m) GROUP BY ad_id"),
                     {"m": minute}).all()
        return time.perf_counter() - started


def report(figures: Figures, workload: Workload, settings: Settings, writers: int) -> str:
    clicks = workload.clicks
    rebuild_rate = clicks / figures.rebuild_seconds
    replays = figures.replay_seconds
    median_replay = slower_middle(replays)
    replay_rate = clicks / median_replay
    rows = [
        ("pipeline step: the close tick claimed the minute, after the deadline",
         f"{figures.claimed_delay:.3f} s", "", "", None),
        ("pipeline step: every part published and confirmed, after the deadline",
         f"{figures.published_delay:.3f} s", "", "", None),
        ("top 100 committed, after the deadline", f"{figures.top_delay:.3f} s",
         f"{figures.pg_only:.3f} s", "<= 1 s", figures.top_delay <= 1.0),
        ("every per-ad count committed, after the deadline", f"{figures.all_delay:.3f} s",
         f"{figures.pg_only:.3f} s", "<= PostgreSQL only", figures.all_delay <= figures.pg_only),
        ("replay from raw, step: rebuild the Redis sets", f"{rebuild_rate:,.0f} raw clicks/s "
         f"({figures.rebuild_seconds:.3f} s)", "", "", None),
        ("replay from raw, step: the raw GROUP BY alone (its floor)",
         f"{clicks / figures.group_by_seconds:,.0f} raw clicks/s "
         f"({figures.group_by_seconds:.3f} s)", "", "", None),
        (f"replay from raw: the whole `replay_minute` task until the new revision is final "
         f"in agg (median of {len(replays)}: {', '.join(f'{r:.3f} s' for r in replays)})",
         f"{math.floor(replay_rate):,} raw clicks/s ({median_replay:.3f} s)", "",
         ">= 500,000 raw clicks/s", replay_rate >= 500_000),
    ]
    lines = [
        f"Workload: {clicks:,} clicks in one minute over {len(workload.counts):,} ads "
        f"(one each, the rest Zipf), {settings.shard_count} shards, top {settings.top_k}, "
        f"{settings.aggregate_chunk_ads:,} ads per aggregates message; Celery worker with "
        f"{os.cpu_count()} processes, {writers} aggregated writer(s), beat ticking every "
        f"{settings.close_tick_seconds:g} s. PostgreSQL only = one INSERT ... SELECT ... "
        "GROUP BY transaction writing the same tables, timed as if it started at the deadline. "
        "Every result was checked exact against the workload. Load average when the minute "
        f"closed: {figures.load_average:.1f} (other work shares this machine's cores, so "
        "single runs vary by a second or more)."
        + ("" if figures.warm else " **The pipeline was not warm at the deadline.**"),
        "",
        "| measure | Farloom | PostgreSQL only | target | met |",
        "|---|---:|---:|---|---|",
    ]
    for name, ours, theirs, target, met in rows:
        verdict = "" if met is None else ("met" if met else "**not met**")
        lines.append(f"| {name} | {ours} | {theirs} | {target} | {verdict} |")
    return "\n".join(lines)


def run(options: AggregateOptions, settings: Settings) -> int:
    """Load the minute, close and replay it, print the report; 0 once it is written."""
    logging.getLogger("pika").setLevel(logging.WARNING)  # its INFO lines drown the progress
    if options.replays < 1:
        raise FarloomError("--replays must be at least 1")
    with isolated_bench_env(settings) as env, tempfile.TemporaryDirectory(
            prefix="farloom-bench-aggregate-") as tmp:
        logs = Path(options.logs or tmp)
        logs.mkdir(parents=True, exist_ok=True)
        machine = describe_machine(env.settings)
        minute = minute_of(time.time()) - MINUTE
        workload = make_workload(minute, options.clicks, options.ads, options.zipf, options.seed)
        load(env, workload, options.seed)
        try:
            figures = measure(env, workload, options, logs)
        except BenchFailed:
            for log in sorted(logs.glob("*.log")):
                tail = log.read_text(errors="replace").splitlines()[-15:]
                print(f"--- {log.name} (last lines)\n" + "\n".join(tail), file=sys.stderr)
            raise
    body = report(figures, workload, env.settings, options.writers)
    print(body)
    if options.write_docs:
        section = "\n".join(["## Aggregation", "", machine_markdown(machine), "", body])
        DOCS_PATH.parent.mkdir(parents=True, exist_ok=True)
        document = DOCS_PATH.read_text() if DOCS_PATH.exists() else "# Benchmarks\n"
        DOCS_PATH.write_text(replace_section(document, SECTION, section))
        print(f"wrote {DOCS_PATH}", file=sys.stderr)
    return 0
