"""``farloom bench publish``: the log watcher's publisher against the naive way.

Both publish the same one-click messages, persistent and broker-confirmed,
to ``farloom.clicks`` in the benchmark's own vhost:
- **naive**: pika's BlockingChannel in confirm mode, which waits for each
  message's confirm before sending the next (one round trip per message);
- **Farloom**: farloom_tasks.stores.click_publisher.ConfirmingPublisher (what generate, watch and
  import use): a window of unconfirmed messages, confirms handled as they come.
The target is the log watcher's: at least 15,000 messages/s with 1 click per
message, so that it is never the pipeline's bottleneck.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator

import pika
from tqdm import tqdm

from farloom_tasks.bench import report as bench_report
from farloom_tasks.bench.env import BenchEnv, describe_machine, isolated_bench_env
from farloom_tasks.bench.options import PublishOptions
from farloom_tasks.bench.traffic import PacedSource, Traffic, publish
from farloom_tasks.errors import FarloomError
from farloom_tasks.settings import Settings
from farloom_tasks.stores import pika_fixes, topology
from farloom_tasks.stores.click_source import Outgoing

TARGET_MESSAGES_PER_S = 15_000
DOCS_SECTION = "publish"


def _naive(env: BenchEnv, bodies: Iterator[Outgoing], count: int) -> float:
    # The baseline is plain pika: it runs before the first ConfirmingPublisher
    # of this process installs the frame-joining fix (stores/pika_fixes.py).
    if pika_fixes.installed():
        raise FarloomError("the naive baseline would run on patched pika")
    connection = topology.connect(env.settings.amqp_url)
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        properties = pika.BasicProperties(delivery_mode=topology.PERSISTENT)
        started = time.monotonic()
        for _ in tqdm(range(count), desc="naive", unit="msg", file=sys.stderr):
            channel.basic_publish(topology.CLICKS_EXCHANGE, "", next(bodies).body, properties)
        return time.monotonic() - started
    finally:
        connection.close()


def _farloom(env: BenchEnv, bodies: Iterator[Outgoing], count: int) -> float:
    with tqdm(total=count, desc="farloom", unit="msg", file=sys.stderr) as bar:
        return publish(env, PacedSource(bodies, count, None, bar))


def run(options: PublishOptions, settings: Settings) -> int:
    """Both publishers into an isolated vhost, every message checked queued; prints the table."""
    if options.repeat < 1:
        raise FarloomError("--repeat must be at least 1")
    with isolated_bench_env(settings) as env:
        traffic = Traffic(clicks_per_message=1, base_time=time.time())
        naive_s = _naive(env, traffic.bodies(options.naive_messages), options.naive_messages)
        # Several runs: a single one swings too much on a shared machine (how much:
        # docs/benchmarks.md, "Figures behind the code").
        runs: list[float] = []
        for _ in range(options.repeat):
            env.reset()
            runs.append(_farloom(env, traffic.bodies(options.messages), options.messages))
            depth = env.ingest_queue_depth()
            if depth != options.messages:
                raise FarloomError(f"{depth:,} of {options.messages:,} messages reached the queue")
        machine = describe_machine(env.settings)
    naive_rate = options.naive_messages / naive_s
    farloom_s = bench_report.slower_middle(runs)
    farloom_rate = options.messages / farloom_s
    all_runs = ", ".join(f"{int(options.messages / seconds):,}" for seconds in runs)
    met = farloom_rate >= TARGET_MESSAGES_PER_S
    body = "\n".join([
        "## Publisher (log watcher)",
        "",
        "`farloom bench publish`: one-click messages, persistent, broker-confirmed, to "
        "`farloom.clicks` (queue `farloom.clicks.ingest` bound, nobody consuming). Naive = "
        "pika BlockingChannel in confirm mode (a round trip per message). Farloom = "
        "`farloom_tasks/stores/click_publisher.py` (`farloom generate`, `watch`, `import`).",
        "",
        "| publisher | messages | seconds | messages/s |",
        "|---|---:|---:|---:|",
        f"| naive (sync confirms) | {options.naive_messages:,} | {naive_s:.2f} | "
        f"{int(naive_rate):,} |",
        f"| Farloom (median of {len(runs)} runs: {all_runs} messages/s) | {options.messages:,} | "
        f"{farloom_s:.2f} | {int(farloom_rate):,} |",
        "",
        f"Farloom / naive: {math.floor(farloom_rate / naive_rate * 10) / 10}x. "
        f"Target: >= {TARGET_MESSAGES_PER_S:,} messages/s: "
        f"{'met' if met else '**not met**'} ({int(farloom_rate):,}). "
        f"Messages in the queue after each run: {options.messages:,} (every one confirmed).",
    ])
    print(body)
    if options.write_docs:
        bench_report.write_section(DOCS_SECTION, body,
                                   machine=bench_report.machine_markdown(machine))
        print(f"wrote the {DOCS_SECTION} section of {bench_report.DOCS_PATH}")
    return 0
