"""`farloom bench ingest --quick` end to end: the harness works (this is not a speed test)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.stack import Stack

CONSUMERS = {"null", "naive", "farloom"}


def test_a_quick_ingest_bench_runs_every_consumer_on_every_message(
        session_stack: Stack, tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nIntro.\n\n<!-- bench:aggregate:start -->\n"
                    "aggregation figures\n<!-- bench:aggregate:end -->\n")
    report = tmp_path / "report.json"

    done = session_stack.farloom("bench", "ingest", "--quick", "--report", str(report),
                                 "--write-docs", "--docs", str(docs), timeout=150)

    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(report.read_text())
    rows = result["rows"]
    # Both message shapes, both modes, all three consumers: one row each.
    assert sorted((r["mode"], r["clicks_per_message"], r["consumer"]) for r in rows) == sorted(
        (mode, cpm, consumer) for mode in ("preloaded", "sustained") for cpm in (1, 100)
        for consumer in CONSUMERS)
    for row in rows:
        where = f"{row['mode']} {row['clicks_per_message']} {row['consumer']}"
        assert row["complete"], where
        assert row["messages_done"] == row["messages_expected"] > 0, where
        assert row["clicks_done"] == row["messages_expected"] * row["clicks_per_message"], where
        assert row["clicks_per_s"] > 0, where
        assert row["peak_rss_mb"] > 0, where
        if row["mode"] == "sustained":
            assert row["behind_clicks"] is not None, where
    for row in (r for r in rows if r["consumer"] == "farloom"):
        assert 0 < row["latency_p50_s"] <= row["latency_p99_s"]
    names = " ".join(t["name"] for t in result["targets"])
    for target in ("sustained", "70% of (a)", "10x (b)", "50,000", "RSS"):
        assert target in names

    page = docs.read_text()
    assert page.index("<!-- bench:machine:start -->") < page.index("<!-- bench:aggregate:start")
    assert "aggregation figures" in page  # another benchmark's section is left alone
    ingest = page[page.index("<!-- bench:ingest:start -->"):page.index("<!-- bench:ingest:end")]
    assert ingest.count("| (c) Farloom |") == 4
    assert "| PostgreSQL |" in page and "| RabbitMQ |" in page


def test_a_benchmark_that_is_not_in_the_tree_says_so(session_stack: Stack) -> None:
    done = session_stack.farloom("bench", "no-such-part", timeout=60)
    assert done.returncode == 2
    assert "invalid choice" in done.stderr


def test_the_dimensions_comparison_drains_each_variant_and_writes_its_section(
        session_stack: Stack, tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n<!-- bench:aggregate:start -->\naggregation figures\n"
                    "<!-- bench:aggregate:end -->\n")
    report = tmp_path / "report.json"

    done = session_stack.farloom("bench", "ingest", "--dimensions-compare", "--quick",
                                 "--report", str(report), "--write-docs", "--docs", str(docs),
                                 timeout=150)

    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(report.read_text())["dimension_runs"]
    assert [r["variant"] for r in runs] == ["off", "on", "on, catalog already filled"]
    for run in runs:
        assert run["complete"] and run["clicks_per_s"] > 0, run
    page = docs.read_text()
    assert "aggregation figures" in page
    section = page[page.index("<!-- bench:ingest-dimensions:start -->"):]
    assert "## Ingest with dimensions" in section and "| on | " in section
