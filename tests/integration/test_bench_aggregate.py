"""`farloom bench aggregate` end to end at tiny sizes: the baseline minute and the sliced
minute close through the real pipeline, every slice is checked exact by the bench, and
both sections are written (a harness check, not a speed test)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.stack import Stack

CLICKS, ADS = 6_000, 600
HISTORY_MINUTES, HISTORY_CLICKS = 3, 200


def test_a_tiny_aggregate_bench_closes_a_baseline_and_a_sliced_minute(
        session_stack: Stack, tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n<!-- bench:api:start -->\napi figures\n"
                    "<!-- bench:api:end -->\n")
    report = tmp_path / "report.json"

    done = session_stack.farloom(
        "bench", "aggregate", "--clicks", str(CLICKS), "--ads", str(ADS), "--warmup", "6",
        "--replays", "2", "--slice-runs", "1", "--history-minutes", str(HISTORY_MINUTES),
        "--history-clicks", str(HISTORY_CLICKS), "--report", str(report), "--write-docs",
        "--docs", str(docs), timeout=300)

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(report.read_text())
    assert (result["clicks"], result["ads"]) == (CLICKS, ADS)
    assert result["slices"] == ["country", "device", "campaign", "advertiser"]
    figures = result["figures"]
    sliced = figures["slices"]
    # Each step after the deadline, and the slices after their own transaction began.
    assert 0 < figures["top_delay"] <= figures["all_delay"]
    assert 0 < sliced["baseline_top_delay"] <= sliced["baseline_all_delay"]
    assert sliced["slices_began_delay"] < sliced["slices_delay"]
    assert len(figures["replay_seconds"]) == len(sliced["replay_slices_seconds"]) == 2
    assert len(sliced["alone_seconds"]) == len(sliced["history_seconds"]) == 1
    # Two minutes of the workload plus the history's clicks, all in raw.
    assert sliced["stored_rows"][0] == 2 * CLICKS + HISTORY_MINUTES * HISTORY_CLICKS
    # Every ad is in one campaign and one advertiser: at least one count each per ad.
    assert sliced["ad_counts"] >= 2 * ADS

    page = docs.read_text()
    assert "api figures" in page  # another benchmark's section is left alone
    section = page[page.index("<!-- bench:slices-at-close:start -->"):]
    assert "## Slices at close" in section and "| every slice committed" in section
    assert "## Aggregation" in page[page.index("<!-- bench:aggregate:start -->"):]
