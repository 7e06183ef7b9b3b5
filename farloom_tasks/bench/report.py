"""Benchmark results: rows, targets met or not, and the Markdown that goes into docs.

Pure, but for ``write_section``, which writes a section into the benchmarks page.

Targets are judged on the measured figure as is: a figure just under a target
is "not met", never rounded up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

CONSUMER_LABELS = {"null": "(a) null", "naive": "(b) naive", "farloom": "(c) Farloom"}
PRELOADED, SUSTAINED = "preloaded", "sustained"


@dataclass
class Row:
    """One consumer's run of one scenario."""

    mode: str  # PRELOADED (drain a full queue) or SUSTAINED (paced publisher)
    clicks_per_message: int
    consumer: str  # "null", "naive" or "farloom"
    messages_expected: int
    messages_done: int
    clicks_done: int
    clicks_per_s: float  # drain rate, or steady in-window rate when sustained
    complete: bool  # every expected message processed (and, for Farloom, durable)
    offered_clicks_per_s: float | None = None  # sustained: the publisher's target rate
    published_clicks_per_s: float | None = None  # sustained: what the publisher achieved
    behind_clicks: int | None = None  # sustained: published, not yet done when publishing ended
    kept_up: bool | None = None  # sustained: less than a second of traffic behind
    peak_rss_mb: float | None = None
    latency_p50_s: float | None = None  # publish -> durable (Farloom only)
    latency_p99_s: float | None = None
    note: str = ""


@dataclass(frozen=True)
class Target:
    name: str
    measured: str
    met: bool


def middle_run(runs: Sequence[T], slowness: Callable[[T], float]) -> T:
    """The median of repeated runs; for an even count the slower middle: never flatters."""
    return sorted(runs, key=slowness)[len(runs) // 2]


def slower_middle(durations: Sequence[float]) -> float:
    """The median of repeated timings (``middle_run`` by duration)."""
    return middle_run(durations, float)


def combine_repeats(rows: Sequence[Row]) -> list[Row]:
    """One row per scenario and consumer: the median run of its repeats.

    A 2-core machine shared by the broker, PostgreSQL, Redis and the consumer
    swings a single short run widely (docs/benchmarks.md, "Figures behind the
    code"); the median of interleaved runs is steadier. The median run's row
    is kept whole (its latency belongs to it), its peak RSS becomes the largest
    of any run, and its note lists every run's rate. Order follows each
    scenario's first run.
    """
    groups: dict[tuple[str, int, str, float | None], list[Row]] = {}
    for row in rows:
        key = (row.mode, row.clicks_per_message, row.consumer, row.offered_clicks_per_s)
        groups.setdefault(key, []).append(row)
    combined: list[Row] = []
    for runs in groups.values():
        if len(runs) == 1:
            combined.append(runs[0])
            continue
        median = middle_run(runs, lambda r: -r.clicks_per_s)  # a lower rate is slower
        rss = [r.peak_rss_mb for r in runs if r.peak_rss_mb is not None]
        rates = ", ".join(f"{_down(r.clicks_per_s):,.0f}" for r in runs)
        note = f"median of {len(runs)} runs ({rates})"
        combined.append(replace(
            median, complete=all(r.complete for r in runs),
            peak_rss_mb=max(rss) if rss else None,
            note="; ".join(n for n in (note, median.note) if n)))
    return combined


def _down(value: float, digits: int = 0) -> float:
    """Truncate for display, so that 9,999.9 never reads as 10,000."""
    scale = 10.0**digits
    return math.floor(value * scale) / scale


def _find(rows: Sequence[Row], mode: str, cpm: int, consumer: str) -> list[Row]:
    return [r for r in rows if r.mode == mode and r.clicks_per_message == cpm
            and r.consumer == consumer]


def ratio(rows: Sequence[Row], cpm: int, over: str) -> float | None:
    """Farloom's preloaded drain rate divided by a baseline's, or None if either is missing."""
    ours, theirs = _find(rows, PRELOADED, cpm, "farloom"), _find(rows, PRELOADED, cpm, over)
    if not ours or not theirs or theirs[0].clicks_per_s <= 0:
        return None
    return ours[0].clicks_per_s / theirs[0].clicks_per_s


def targets(rows: Sequence[Row]) -> list[Target]:
    """The issue's targets, for whichever scenarios were run."""
    found: list[Target] = []
    sustained = sorted(_find(rows, SUSTAINED, 1, "farloom"),
                       key=lambda r: r.offered_clicks_per_s or 0)
    if sustained:
        best = sustained[-1]
        found.append(Target(
            "1 click/msg: >= 10,000 clicks/s sustained (Farloom, highest offered rate)",
            f"{_down(best.clicks_per_s):,.0f} clicks/s at {best.offered_clicks_per_s or 0:,.0f} "
            f"offered, {'kept up' if best.kept_up else 'fell behind'}",
            best.clicks_per_s >= 10_000 and bool(best.kept_up)))
    for over, floor, label in (("null", 0.70, "70% of (a)"), ("naive", 10.0, "10x (b)")):
        value = ratio(rows, 1, over)
        if value is not None:
            found.append(Target(f"1 click/msg: >= {label} (preloaded drain)",
                                f"{_down(value, 2):.2f}x", value >= floor))
    drained = _find(rows, PRELOADED, 100, "farloom")
    if drained:
        found.append(Target("100 clicks/msg: >= 50,000 clicks/s (preloaded drain)",
                            f"{_down(drained[0].clicks_per_s):,.0f} clicks/s",
                            drained[0].clicks_per_s >= 50_000))
    rss = [r.peak_rss_mb for r in rows if r.consumer == "farloom" and r.peak_rss_mb is not None]
    if rss:
        found.append(Target("Farloom worker peak RSS <= 200 MB",
                            f"{math.ceil(max(rss) * 10) / 10:.1f} MB",
                            max(rss) <= 200))
    at_5k = [r for r in sustained if r.offered_clicks_per_s == 5_000
             and r.latency_p99_s is not None]
    if at_5k:
        p99 = at_5k[0].latency_p99_s or 0.0
        reached = at_5k[0].published_clicks_per_s
        found.append(Target("p99 publish -> durable <= 1 s at 5,000 clicks/s (1 click/msg)",
                            f"{math.ceil(p99 * 1000) / 1000:.3f} s"
                            + ("" if reached is None else
                               f" (publisher reached {_down(reached):,.0f} clicks/s)"),
                            p99 <= 1.0))
    return found


METHOD = """\
How it is measured (`farloom bench ingest`, `farloom_tasks/bench/ingest.py`): each consumer
is its own process on the same queue of a throw-away database, Redis db and vhost, and gets
the same messages (same seed, same click ids; the tables, Redis and queues are emptied
between runs). Messages are published with Farloom's confirming publisher. Each click is
what an ad server sends: a random UUIDv4 click id (`--click-ids sequential` gives short
sequential ids instead, for comparison), an ad out of 10,000 (Zipf), `user_id`, `ip` and
`country`.

- **(a) null**: decodes each body with orjson and acks (multiple-acks every 200 messages):
  the broker + pika ceiling for one Python process.
- **(b) naive**: prefetch 1; per click one INSERT committed on its own and one ZINCRBY;
  one ack per message. It gets fewer messages and a 30 s cap; its rate is what it did.
- **(c) Farloom**: `farloom ingest` with its defaults (batched PostgreSQL transactions,
  two in flight, + outbox + idempotent Redis script, ack after both are durable).
- **preloaded**: N messages are published and confirmed first; clicks/s is the consumer's
  own first-delivery-to-last-ack rate. (a) and (c) drain `--repeat` times (default 3),
  interleaved, and the row is the median run (the lower middle for an even count), with
  every run's rate in its note and the largest peak RSS of any run.
- **sustained**: a paced publisher runs for the window; clicks/s is what the consumer made
  durable (Farloom: rows in `raw.ad_clicks`) or acked (baselines) between 20% and 100% of
  the window. "Behind at end" is the clicks published but not yet durable/acked when
  publishing stopped (a big prefetch hides them from the queue's depth); a consumer kept
  up if that is under one second of offered traffic. If the publisher itself could not
  reach the offered rate, the row says so, and a "kept up" there proves less.
- Peak RSS is sampled every 0.1 s with psutil (the larger of that and the worker's own
  VmHWM). Latency is publish (header `x-farloom-published-at-us`) to durable, from the
  worker's summary; under "preloaded" it includes the time messages waited in the queue.
- Figures are truncated, never rounded up, before they are compared with a target."""


def _num(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def markdown(rows: Sequence[Row], found: Sequence[Target], context: str) -> str:
    """The results table, the ratios and the targets, as Markdown."""
    lines = [context, "", METHOD, "",
             "| mode | clicks/msg | consumer | offered clicks/s | published clicks/s | messages "
             "| clicks/s | all processed | behind at end (clicks) | peak RSS MB | p50 s | p99 s "
             "| note |",
             "|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in rows:
        behind = "" if r.behind_clicks is None else (
            f"{r.behind_clicks:,} ({'kept up' if r.kept_up else 'fell behind'})")
        lines.append(
            f"| {r.mode} | {r.clicks_per_message} | {CONSUMER_LABELS[r.consumer]} "
            f"| {_num(r.offered_clicks_per_s, ',.0f')} "
            f"| {_num(r.published_clicks_per_s and _down(r.published_clicks_per_s), ',.0f')} "
            f"| {r.messages_done:,}/{r.messages_expected:,} | {_down(r.clicks_per_s):,.0f} "
            f"| {'yes' if r.complete else 'no'} | {behind} | {_num(r.peak_rss_mb, '.1f')} "
            f"| {_num(r.latency_p50_s, '.3f')} | {_num(r.latency_p99_s, '.3f')} | {r.note} |")
    cpms = sorted({r.clicks_per_message for r in rows})
    lines += ["", "| clicks/msg | (c)/(a) | (c)/(b) |", "|---:|---:|---:|"]
    for cpm in cpms:
        a, b = ratio(rows, cpm, "null"), ratio(rows, cpm, "naive")
        lines.append(f"| {cpm} | {_num(a and _down(a, 2), '.2f')} "
                     f"| {_num(b and _down(b, 1), '.1f')} |")
    lines += ["", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {t.name} | {t.measured} | {'met' if t.met else '**not met**'} |"
              for t in found]
    return "\n".join(lines)


def machine_markdown(rows: Sequence[tuple[str, str]]) -> str:
    return "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def replace_section(document: str, name: str, body: str) -> str:
    """Put ``body`` between ``<!-- bench:NAME:start -->`` and its end marker.

    Text outside the markers (other engineers' sections) is kept as it is; a
    missing section is appended at the end.
    """
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(document):
        return pattern.sub(lambda _m: block, document, count=1)
    return document.rstrip("\n") + ("\n\n" if document.strip() else "") + block + "\n"


DOCS_PATH = Path(__file__).resolve().parents[2] / "docs" / "benchmarks.md"
DOCS_TITLE = "# Benchmarks"
DOCS_INTRO = ("Figures from `farloom bench` (`make bench`). Each section is rewritten by its "
              "benchmark with `--write-docs`; text outside the markers is kept.")


def write_section(name: str, body: str, path: Path = DOCS_PATH, *,
                  machine: str | None = None) -> None:
    """Rewrite section ``name`` of the benchmarks page, and the machine section if given.

    A page that does not exist yet starts with its title; text outside the
    markers is kept (``replace_section``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    document = path.read_text() if path.exists() else DOCS_TITLE + "\n"
    if machine is not None:
        document = replace_section(document, "machine", machine)
    path.write_text(replace_section(document, name, body))


def update_docs(document: str, machine: str, ingest: str) -> str:
    """The benchmarks page with its machine section first and the ingest section updated."""
    if not document.strip():
        document = f"{DOCS_TITLE}\n\n{DOCS_INTRO}\n"
    if "<!-- bench:machine:start -->" not in document:
        # The machine description leads the page, right after the title block.
        lines = document.splitlines()
        title = next((i for i, line in enumerate(lines) if line.startswith("# ")), -1)
        cut = title + 1
        while cut < len(lines) and lines[cut].strip() and not lines[cut].startswith("#"):
            cut += 1
        while title >= 0 and cut < len(lines) and not lines[cut].startswith(("#", "<!--")):
            cut += 1
        head, tail = "\n".join(lines[:cut]).rstrip("\n"), "\n".join(lines[cut:])
        document = (head + "\n\n<!-- bench:machine:start -->\n<!-- bench:machine:end -->\n\n"
                    + tail).rstrip("\n") + "\n"
    document = replace_section(document, "machine", "## Machine\n\n" + machine)
    return replace_section(document, "ingest", ingest)
