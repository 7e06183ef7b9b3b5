"""`farloom bench slice-options`' flags (in cli/bench.py like every other benchmark's),
and the GROUPING SETS its close candidates run."""

from __future__ import annotations

import argparse

import pytest

from farloom_tasks.bench import slice_postgresql as sql
from farloom_tasks.bench.slice_bench_options import QUICK, SliceBenchOptions
from farloom_tasks.cli import bench
from farloom_tasks.core.dimensions import parse_dimensions
from farloom_tasks.errors import FarloomError


def _options(*argv: str) -> SliceBenchOptions:
    parser = argparse.ArgumentParser(prog="farloom bench")
    bench.configure(parser, "bench")
    return bench.slice_options_options(parser.parse_args(["slice-options", *argv]))


def test_without_flags_the_bench_measures_the_issue_s_minute_in_three_rounds() -> None:
    options = _options()
    assert (options.clicks, options.ads, options.rounds, options.read_minutes) == (
        1_000_000, 100_000, 3, 60)
    assert options.dimensions == "country,device"


def test_quick_takes_the_tiny_sizes_and_keeps_the_other_flags() -> None:
    options = _options("--quick", "--clicks", "5000000", "--dimensions", "country*device")
    assert (options.clicks, options.rounds, options.requests) == (
        QUICK.clicks, QUICK.rounds, QUICK.requests)
    assert options.dimensions == "country*device"


@pytest.mark.parametrize("argv", [("--rounds", "0"), ("--requests", "0"),
                                  ("--read-minutes", "61")])
def test_sizes_out_of_range_are_refused(argv: tuple[str, ...]) -> None:
    with pytest.raises(FarloomError, match="--rounds"):
        _options(*argv)


def test_each_slice_and_each_owner_total_is_one_grouping_set_of_the_one_raw_scan() -> None:
    statement = sql.rows_at_close(parse_dimensions("country,device,country*device"),
                                  hour_rollup=True)
    assert ("GROUPING SETS ((country, ad_id), (device, ad_id), (country, device, ad_id), "
            "(advertiser_id, ad_id), (campaign_id), (advertiser_id))") in statement
    assert statement.count("FROM raw.ad_clicks") == 1
    # GROUPING(country, device, advertiser_id, campaign_id, ad_id): a bit per column left out
    assert "WHEN 22 THEN 'device'" in statement and "WHEN 6 THEN 'country*device'" in statement
    assert "hour_rows" in statement
    assert "hour_rows" not in sql.rows_at_close(parse_dimensions("country"), hour_rollup=False)
