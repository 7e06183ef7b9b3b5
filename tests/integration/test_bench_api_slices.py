"""`farloom bench api --slices` end to end on a tiny size: it fills slice data, checks the
filtered answers against the minutes' sums, times both tops and writes its section (a
harness check, not a speed test)."""

from __future__ import annotations

from pathlib import Path

from tests.support.stack import Stack


def test_a_tiny_filtered_reads_bench_times_both_tops_over_both_windows_and_writes_its_section(
        stack: Stack, tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\n<!-- bench:api:start -->\napi figures\n"
                    "<!-- bench:api:end -->\n")

    done = stack.farloom("bench", "api", "--slices", "--slice-clicks", "3000", "--slice-ads",
                         "400", "--slice-templates", "2", "--slice-requests", "3",
                         "--write-docs", "--slice-docs", str(docs), timeout=300)

    # Exit 1 would only mean a target not met; a failed check or a crash is another code.
    assert done.returncode in (0, 1), done.stderr[-3000:]
    assert "the API's top differs" not in done.stderr
    for scenario in ("US, latest 60 minutes (unaligned: all 60 are edge minutes) | 3 |",
                     "all, latest 60 minutes (unaligned: all 60 are edge minutes) | 3 |",
                     "US, one aligned hour (its hour rollup) | 3 |",
                     "all, one aligned hour (its hour rollup) | 3 |"):
        assert scenario in done.stdout, done.stdout
    assert "filled 90 minutes of" in done.stderr
    page = docs.read_text()
    assert "api figures" in page  # another benchmark's section is left alone
    section = page[page.index("<!-- bench:filtered-reads:start -->"):]
    assert "## Filtered reads" in section and "load average" in section
