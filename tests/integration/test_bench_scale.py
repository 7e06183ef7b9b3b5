"""`farloom bench scale` end to end at tiny sizes: every figure is measured and reported
(a harness check, not a speed test)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.stack import Stack

ROWS = 20_000
LOAD_RATE = 4.0  # clicks/s per loaded hour: 14,400 rows an hour, so two partitions
MINUTE_DAYS, ADS_PER_MINUTE = 1, 100


def test_a_tiny_scale_bench_reports_every_figure(stack: Stack, tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n<!-- bench:api:start -->\napi figures\n"
                    "<!-- bench:api:end -->\n")
    report = tmp_path / "report.json"

    done = stack.farloom(
        "bench", "scale", "--rows", str(ROWS), "--load-rate", str(LOAD_RATE),
        "--messages", "100", "--repeat", "1", "--rate", "5000", "--duration", "4",
        "--minute-days", str(MINUTE_DAYS), "--rollup-days", "30",
        "--ads-per-minute", str(ADS_PER_MINUTE), "--universe", "2000", "--requests", "5",
        "--report", str(report), "--write-docs", "--docs", str(docs), timeout=240)

    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(report.read_text())["figures"]
    assert (figures["rows_loaded"], figures["partitions_loaded"]) == (ROWS, 2)
    assert figures["complete"], "a drain did not store every click"
    for rates in ("empty_rates", "loaded_rates", "ceiling_rates"):
        assert len(figures[rates]) == 1 and figures[rates][0] > 0, rates
    assert figures["clicks_per_drain"] == 100 * 100
    # A click of every field takes more than 100 bytes with its two indexes, and less
    # than a few kilobytes.
    assert 100 < figures["raw_bytes"] / ROWS < 3000
    assert figures["raw_heap_bytes"] + figures["raw_index_bytes"] <= figures["raw_bytes"]

    without, with_drop = figures["sustained"]
    for run in (without, with_drop):
        assert run["complete"] and run["latency_p99_s"] > 0, run
    assert without["drop_seconds"] is None
    assert with_drop["drop_seconds"] > 0
    # The oldest loaded hour holds the remainder of the rows (bench/scale_plan.py).
    assert with_drop["dropped_rows"] == ROWS - int(LOAD_RATE * 3600)

    assert figures["api_rows"]["agg.ad_clicks_per_minute"] == (
        MINUTE_DAYS * 1440 * ADS_PER_MINUTE)
    assert figures["api_rows"]["agg.ad_clicks_per_hour"] > 0
    assert figures["api_rows"]["agg.ad_clicks_per_day"] > 0
    windows = {w["label"]: w for w in figures["api"]}
    assert set(windows) == {"24 hours", "7 days", "30 days"}
    assert windows["24 hours"]["requests"] == 5 and windows["24 hours"]["p99_s"] > 0
    for window in windows.values():  # timed, or the API's refusal recorded
        assert window["requests"] > 0 or window["refused"].startswith("refused: HTTP")

    page = docs.read_text()
    assert "api figures" in page  # another benchmark's section is left alone
    section = page[page.index("<!-- bench:scale:start -->"):page.index("<!-- bench:scale:end")]
    for shown in ("bare COPY ceiling", "Farloom, empty raw table",
                  f"Farloom, {ROWS:,} rows in raw", "Bytes on disk per stored click",
                  "while a partition drop runs", "| 30 days |", "Xu's peak"):
        assert shown in section, shown
    assert "| PostgreSQL |" in page
