"""`farloom bench`'s flags become each benchmark's options, with the options' own defaults."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from farloom_tasks.bench.options import (
    AggregateOptions,
    ApiOptions,
    BaselineOptions,
    IngestOptions,
    PublishOptions,
)
from farloom_tasks.cli import bench


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="farloom bench")
    bench.configure(parser, "bench")
    return parser.parse_args(argv)


def test_a_benchmark_run_without_flags_gets_its_options_defaults() -> None:
    ingest = bench.ingest_options(_parse("ingest"))
    assert dataclasses.replace(ingest, command_line="") == IngestOptions(command_line="")
    assert dataclasses.replace(bench.aggregate_options(_parse("aggregate")),
                               command_line="") == AggregateOptions(command_line="")
    assert bench.api_options(_parse("api")) == ApiOptions()
    assert bench.publish_options(_parse("publish")) == PublishOptions()
    assert bench.baseline_options(_parse("baseline-consumer", "null", "--expect-messages",
                                         "5")) == BaselineOptions("null", 5)


def test_repeated_and_listed_flags_reach_the_options_as_tuples() -> None:
    options = bench.ingest_options(_parse(
        "ingest", "--consumers", "null, farloom", "--rate", "100", "--rate", "200",
        "--clicks-per-message", "1", "--quick", "--report", "out.json"))
    assert options.consumers == ("null", "farloom")
    assert options.rates == (100.0, 200.0)
    assert options.clicks_per_message == (1,)
    assert options.quick and options.report == Path("out.json")
    assert dataclasses.replace(bench.aggregate_options(_parse(
        "aggregate", "--clicks", "20000", "--ads", "2000", "--logs", "logs",
        "--history-minutes", "0")), command_line="") == AggregateOptions(
        clicks=20_000, ads=2_000, logs=Path("logs"), history_minutes=0, command_line="")


def test_the_benchmark_list_leaves_out_the_baseline_consumer() -> None:
    parser = argparse.ArgumentParser(prog="farloom bench")
    bench.configure(parser, "bench")
    listing = parser.format_help()
    assert all(part in listing for part in ("ingest", "aggregate", "api", "publish"))
    assert "baseline-consumer" not in listing
