"""Benchmark targets are judged without rounding, and docs sections are replaced in place."""

from __future__ import annotations

from farloom_tasks.bench.report import (
    PRELOADED,
    SUSTAINED,
    Row,
    combine_repeats,
    replace_section,
    targets,
    update_docs,
)


def _row(mode: str, cpm: int, consumer: str, rate: float, **extra: object) -> Row:
    return Row(mode, cpm, consumer, 10, 10, 10 * cpm, rate, True, **extra)  # type: ignore[arg-type]


def test_a_figure_just_below_a_target_is_not_met() -> None:
    rows = [_row(PRELOADED, 1, "null", 10_000.0), _row(PRELOADED, 1, "farloom", 6_999.9),
            _row(PRELOADED, 1, "naive", 700.0), _row(PRELOADED, 100, "farloom", 49_999.9),
            _row(SUSTAINED, 1, "farloom", 9_999.99, offered_clicks_per_s=12_000.0,
                 kept_up=True, latency_p99_s=1.0001)]
    found = {t.name: t for t in targets(rows)}
    assert [t.met for t in found.values()] == [False, False, False, False]
    measured = [t.measured for t in found.values()]
    assert "0.69x" in measured  # truncated for display, never rounded up to 0.70
    assert any(m.startswith("9,999 clicks/s") for m in measured)


def test_targets_at_their_exact_thresholds_are_met() -> None:
    rows = [_row(PRELOADED, 1, "null", 10_000.0), _row(PRELOADED, 1, "farloom", 7_000.0),
            _row(PRELOADED, 1, "naive", 700.0), _row(PRELOADED, 100, "farloom", 50_000.0),
            _row(SUSTAINED, 1, "farloom", 10_000.0, offered_clicks_per_s=12_000.0,
                 kept_up=True, peak_rss_mb=200.0),
            _row(SUSTAINED, 1, "farloom", 5_000.0, offered_clicks_per_s=5_000.0,
                 kept_up=True, latency_p99_s=1.0)]
    assert all(t.met for t in targets(rows))
    assert len(targets(rows)) == 6


def test_a_consumer_that_fell_behind_does_not_meet_the_sustained_target() -> None:
    rows = [_row(SUSTAINED, 1, "farloom", 11_000.0, offered_clicks_per_s=12_000.0,
                 kept_up=False)]
    assert [t.met for t in targets(rows)] == [False]


def test_a_section_is_replaced_between_its_markers_and_the_rest_is_kept() -> None:
    page = ("# B\n\n<!-- bench:ingest:start -->\nold\n<!-- bench:ingest:end -->\n\n"
            "<!-- bench:aggregate:start -->\ntheirs\n<!-- bench:aggregate:end -->\n")
    updated = replace_section(page, "ingest", "new")
    assert "old" not in updated
    assert "<!-- bench:ingest:start -->\nnew\n<!-- bench:ingest:end -->" in updated
    assert "theirs" in updated
    assert replace_section(updated, "ingest", "new") == updated


def test_the_machine_section_is_put_first_on_a_page_that_lacks_it() -> None:
    page = "# Benchmarks\n\nIntro.\n\n## Aggregation\n\nfigures\n"
    updated = update_docs(page, "| CPU | x |", "## Ingest\n\ntable")
    assert updated.index("Intro.") < updated.index("bench:machine:start") < updated.index(
        "## Aggregation") < updated.index("bench:ingest:start")
    assert update_docs(updated, "| CPU | x |", "## Ingest\n\ntable") == updated


def test_an_empty_page_gets_a_title_machine_and_ingest_sections() -> None:
    updated = update_docs("", "| CPU | x |", "## Ingest\n\ntable")
    assert updated.startswith("# Benchmarks")
    assert updated.index("## Machine") < updated.index("## Ingest")


def test_repeated_runs_become_their_median_run_with_every_rate_noted() -> None:
    rows = [_row(PRELOADED, 1, "null", 20_000.0, peak_rss_mb=60.0),
            _row(PRELOADED, 1, "naive", 800.0),
            _row(PRELOADED, 1, "farloom", 15_000.0, peak_rss_mb=70.0, latency_p99_s=3.0),
            _row(PRELOADED, 1, "null", 26_000.0, peak_rss_mb=61.0),
            _row(PRELOADED, 1, "farloom", 12_000.0, peak_rss_mb=90.0, latency_p99_s=4.0),
            _row(PRELOADED, 1, "null", 17_000.0, peak_rss_mb=59.0),
            _row(PRELOADED, 1, "farloom", 18_000.0, peak_rss_mb=80.0, latency_p99_s=2.0)]
    combined = combine_repeats(rows)
    assert [r.consumer for r in combined] == ["null", "naive", "farloom"]
    null, naive, farloom = combined
    assert null.clicks_per_s == 20_000.0
    assert farloom.clicks_per_s == 15_000.0
    assert farloom.latency_p99_s == 3.0  # the median run's own latency
    assert farloom.peak_rss_mb == 90.0  # but the largest memory of any run
    assert farloom.note == "median of 3 runs (15,000, 12,000, 18,000)"
    assert naive == rows[1]


def test_an_even_number_of_runs_takes_the_lower_middle() -> None:
    rows = [_row(PRELOADED, 1, "farloom", rate) for rate in (10.0, 40.0, 20.0, 30.0)]
    [combined] = combine_repeats(rows)
    assert combined.clicks_per_s == 20.0
