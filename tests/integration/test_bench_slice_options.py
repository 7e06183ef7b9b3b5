"""`farloom bench slice-options --quick` end to end: it runs every candidate, checks each
exact and writes its report and docs section (this is not a speed test)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.stack import Stack

CANDIDATES = {"rows", "rows_without_hour", "compact", "redis_rows", "redis_compact"}


def test_a_quick_slice_options_bench_measures_every_candidate_and_writes_its_section(
        session_stack: Stack, tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n<!-- bench:aggregate:start -->\naggregation figures\n"
                    "<!-- bench:aggregate:end -->\n")
    report = tmp_path / "report.json"

    done = session_stack.farloom("bench", "slice-options", "--quick", "--report", str(report),
                                 "--write-docs", "--docs", str(docs), timeout=150)

    assert done.returncode == 0, done.stderr[-3000:]
    (only_round,) = json.loads(report.read_text())
    assert set(only_round["close_s"]) == CANDIDATES
    assert set(only_round["contended_s"]) == {"rows", "compact"}
    assert all(rows > 0 for rows in only_round["written_rows"].values())
    # The compact layout writes one row per (slice, value); the rows layout one per ad.
    assert only_round["written_rows"]["compact"] < only_round["written_rows"]["rows"]
    assert only_round["ingest_s"]["on"]["outbox_bytes"] > only_round["ingest_s"]["off"][
        "outbox_bytes"] > 0
    assert only_round["ingest_clicks_per_s"] > 0
    assert {len(times) for times in only_round["reads_s"].values()} == {3}
    page = docs.read_text()
    assert "aggregation figures" in page  # another benchmark's section is left alone
    section = page[page.index("<!-- bench:slices:start -->"):]
    assert "## Where slices are made" in section and "| (b) PostgreSQL at close" in section
