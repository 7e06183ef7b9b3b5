"""`farloom bench topologies`: its flags, the settings of each topology and its table."""

from __future__ import annotations

import argparse
import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from farloom_tasks.bench.local_redis_cluster import ClusterNode, LocalRedisCluster
from farloom_tasks.bench.options import TopologiesOptions
from farloom_tasks.bench.topologies import Measured, markdown, topology_settings
from farloom_tasks.cli import bench
from farloom_tasks.errors import FarloomError
from farloom_tasks.settings import Settings

CLUSTER = LocalRedisCluster(nodes=(ClusterNode(20001), ClusterNode(20002), ClusterNode(20003)),
                            directory=Path("/nonexistent"))


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="farloom bench")
    bench.configure(parser, "bench")
    return parser.parse_args(argv)


def test_a_run_without_flags_gets_the_options_defaults() -> None:
    options = bench.topologies_options(_parse("topologies"))
    assert dataclasses.replace(options, command_line="") == TopologiesOptions(command_line="")


def test_the_flags_choose_topologies_drains_and_rounds() -> None:
    options = bench.topologies_options(_parse(
        "topologies", "--topologies", "single-classic, cluster-quorum",
        "--ingest-messages", "1:300,100:10", "--rounds", "2"))
    assert options.topologies == ("single-classic", "cluster-quorum")
    assert options.ingest_messages == {1: 300, 100: 10}
    assert options.rounds == 2


def test_a_malformed_drain_list_is_refused_with_an_example() -> None:
    with pytest.raises(FarloomError, match="expected pairs like 1:50000"):
        bench.topologies_options(_parse("topologies", "--ingest-messages", "1-300"))


def test_a_cluster_topology_points_redis_at_the_cluster_and_keeps_celery_on_plain_redis() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:6379/4")
    on_cluster = topology_settings(settings, "cluster-quorum", CLUSTER)
    assert on_cluster.redis_cluster
    assert on_cluster.redis_url == "redis://127.0.0.1:20001/0"
    assert on_cluster.celery_result_url == "redis://127.0.0.1:6379/4"
    assert on_cluster.queue_type == "quorum"
    single = topology_settings(settings, "single-quorum", CLUSTER)
    assert (single.redis_cluster, single.redis_url, single.queue_type) == (
        False, "redis://127.0.0.1:6379/4", "quorum")


def test_a_cluster_topology_without_a_cluster_is_an_error() -> None:
    with pytest.raises(FarloomError, match="needs the local Redis Cluster"):
        topology_settings(Settings(), "cluster-classic", None)


def test_the_table_shows_each_topologys_median_round_against_single_classic() -> None:
    options = TopologiesOptions(topologies=("single-classic", "cluster-classic"),
                                ingest_messages={1: 100}, rounds=3)
    measured = {
        "single-classic": Measured(ingest={1: [900.0, 1000.0, 1100.0]}, top_delay=[0.2, 0.3, 0.4],
                                   all_delay=[0.5, 0.5, 0.5], replay_rate=[10.0, 20.0, 30.0]),
        "cluster-classic": Measured(ingest={1: [500.0, 400.0, 600.0]}, top_delay=[0.6, 0.6, 0.6],
                                    all_delay=[1.0, 1.0, 1.0], replay_rate=[5.0, 10.0, 15.0]),
    }
    text = markdown(measured, options, datetime(2026, 12, 3, tzinfo=UTC), (1.0, 2.0))
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert rows == [
        "| `single-classic` | 1,000 (1.00x) | 0.300 s (1.00x) | 0.500 s (1.00x) | 20 (1.00x) |",
        "| `cluster-classic` | 500 (0.50x) | 0.600 s (2.00x) | 1.000 s (2.00x) | 10 (0.50x) |",
    ]
    assert ("- `single-classic`: ingest 1 click/msg 900 / 1,000 / 1,100; top 100 0.200 / 0.300 "
            "/ 0.400 s; per-ad 0.500 / 0.500 / 0.500 s; replay 10 / 20 / 30") in text
