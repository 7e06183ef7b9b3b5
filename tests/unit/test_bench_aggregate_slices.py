"""`farloom bench aggregate`'s truth for the slices: every slice the pipeline makes, counted
from the clicks, with the pipeline's own slice names and value separator."""

from __future__ import annotations

from farloom_tasks.bench.aggregate_slices import expected
from farloom_tasks.bench.aggregate_workload import Workload
from farloom_tasks.bench.slice_workload import SlicedMinute
from farloom_tasks.core.dimensions import parse_dimensions


def test_every_configured_slice_and_both_owner_slices_are_counted_per_value_and_ad() -> None:
    minute = SlicedMinute(
        workload=Workload(1_800_000_000, {"a": 2, "b": 1}),
        slices=tuple(parse_dimensions("country,device,country*device")),
        clicks=[("a", "US", "mobile"), ("a", "US", "desktop"), ("b", "DE", "mobile")],
        campaign_of={"a": "c1", "b": "c1"}, advertiser_of={"a": "v1", "b": "v2"})

    truth = expected(minute)

    assert truth.names == ("country", "device", "country*device", "campaign", "advertiser")
    assert truth.per_value == {
        ("country", "US"): {"a": 2}, ("country", "DE"): {"b": 1},
        ("device", "mobile"): {"a": 1, "b": 1}, ("device", "desktop"): {"a": 1},
        ("country*device", "US*mobile"): {"a": 1}, ("country*device", "US*desktop"): {"a": 1},
        ("country*device", "DE*mobile"): {"b": 1},
        ("campaign", "c1"): {"a": 2, "b": 1},
        ("advertiser", "v1"): {"a": 2}, ("advertiser", "v2"): {"b": 1},
    }
    assert (truth.values, truth.ad_counts) == (10, 12)
