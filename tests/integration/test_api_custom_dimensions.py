"""The custom dimensions' filter (``dimension=NAME:VALUE``) against real slice rows.

Clicks carry a custom ``dimensions`` object (the TalkingData sample's ``os`` and
``device_model``); the slices of FARLOOM_DIMENSIONS, custom ones and combinations
included, are made by the real writer (pipeline/slice_aggregation.py) from the raw
rows this test stores, and every answer is compared with counts computed straight
from the clicks (docs/design.md §2.10, "Filters"), never from agg.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest
from fastapi.testclient import TestClient

from farloom_tasks.core import clicks as contract
from farloom_tasks.core.dimensions import parse_dimensions
from farloom_tasks.core.partitions import DAY, HOUR, start_of
from farloom_tasks.core.windows import MINUTE, iso
from farloom_tasks.pipeline import slice_aggregation, slice_rollup_builds
from farloom_tasks.stores import slices as slice_store
from farloom_tasks.stores.raw import RawStore
from tests.integration.test_api import BASE, put_minute
from tests.integration.test_api_keys import bearer, make_key, serve
from tests.support.minute_checks import set_watermark
from tests.support.stack import Stack

DIMENSIONS = "country,device,os,device_model,os*device_model,device*os"
CONFIGURED = ("country, device, os, device_model, device_model*os, device*os, campaign, "
              "advertiser")
OWNERS = {"a1": ("c1", "acme"), "a2": ("c1", "acme"), "a/3": ("c2", "acme"),
          "g1": ("g-camp", "globex"), "g2": ("g-camp", "globex")}
MINUTES = (BASE, BASE + 60, BASE + 120)
WINDOW = {"from": iso(BASE), "to": iso(BASE + 120)}


class Click(NamedTuple):
    minute: int
    ad_id: str
    device: str | None
    dimensions: dict[str, str]


def make_clicks(per_minute: int = 400, seed: int = 8,
                minutes: tuple[int, ...] = MINUTES) -> list[Click]:
    rng = random.Random(seed)
    clicks = []
    for minute in minutes:
        for _ in range(per_minute):
            # "iOS" and "ios" are two values (custom values are case-sensitive); a ':'
            # in a value is the value's own.
            found = {"os": rng.choice(["iOS", "ios", "13", None]),
                     "device_model": rng.choice(["Pixel 7", "pixel 7", "SM:G9", None])}
            clicks.append(Click(minute, rng.choice(list(OWNERS)),
                                rng.choice(["mobile", "desktop", None]),
                                {k: v for k, v in found.items() if v is not None}))
    return clicks


CLICKS = make_clicks()


def write_custom_slices(stack: Stack, dimensions: str = DIMENSIONS,
                        clicks: list[Click] = CLICKS) -> None:
    """``clicks`` in raw and in the per-ad results, and the slices of ``dimensions``
    (custom ones included) of their minutes made from raw by the real writer."""
    minutes = sorted({c.minute for c in clicks})
    for minute in minutes:
        put_minute(stack, minute, Counter(c.ad_id for c in clicks if c.minute == minute))
    stored = [contract.Click(f"{click.minute}-{i}", click.ad_id, click.minute + i % 60 + 0.5,
                             device=click.device, campaign_id=OWNERS[click.ad_id][0],
                             advertiser_id=OWNERS[click.ad_id][1],
                             dimensions=click.dimensions or None)
              for i, click in enumerate(clicks)]
    raw = RawStore(stack.engine(), stack.settings.shard_count)
    try:
        raw.commit_batch(stored)
    finally:
        raw.close()
    for minute in minutes:
        slice_aggregation.aggregate(
            stack.engine(), parse_dimensions(dimensions), minute=minute, revision=1,
            partition_hours=stack.settings.minute_partition_hours,
            work_mem_mb=stack.settings.slice_work_mem_mb)


Keep = Callable[[Click], bool]


def expected(keep: Keep, minutes: tuple[int, ...] = MINUTES) -> Counter[str]:
    return Counter(c.ad_id for c in CLICKS if c.minute in minutes and keep(c))


def ranked(sums: Counter[str]) -> list[list[object]]:
    order = sorted(sums.items(), key=lambda item: (-item[1], item[0]))
    return [[rank, ad, n] for rank, (ad, n) in enumerate(order, 1)]


def as_rows(body: dict[str, Any]) -> list[list[object]]:
    return [[ad["rank"], ad["ad_id"], ad["clicks"]] for ad in body["ads"]]


def dim(name: str, value: str) -> Keep:
    return lambda c: c.dimensions.get(name) == value


@pytest.fixture
def custom(stack: Stack) -> Stack:
    write_custom_slices(stack)
    return stack


@pytest.fixture
def api(custom: Stack) -> Iterator[TestClient]:
    yield from serve(custom, api_open=False, dimensions=DIMENSIONS)


CASES: list[tuple[dict[str, Any], Keep, str, str]] = [
    ({"dimension": "os:iOS"}, dim("os", "iOS"), "os", "iOS"),
    ({"dimension": "os:ios"}, dim("os", "ios"), "os", "ios"),
    ({"dimension": "device_model:SM:G9"}, dim("device_model", "SM:G9"), "device_model",
     "SM:G9"),
    # Either order: the slice is named and valued in core.dimensions' canonical order.
    ({"dimension": ["os:13", "device_model:Pixel 7"]},
     lambda c: dim("os", "13")(c) and dim("device_model", "Pixel 7")(c),
     "device_model*os", "Pixel 7*13"),
    ({"dimension": ["device_model:pixel 7", "os:iOS"]},
     lambda c: dim("os", "iOS")(c) and dim("device_model", "pixel 7")(c),
     "device_model*os", "pixel 7*iOS"),
    ({"device": "Mobile", "dimension": "os:ios"},
     lambda c: c.device == "mobile" and dim("os", "ios")(c), "device*os", "mobile*ios"),
]


@pytest.mark.parametrize(("filters", "keep", "slice_name", "value"), CASES)
def test_a_custom_dimension_filter_equals_the_clicks_carrying_that_value(
        custom: Stack, api: TestClient, filters: dict[str, Any], keep: Keep,
        slice_name: str, value: str) -> None:
    admin = bearer(make_key(custom, None))
    top = api.get("/v1/ads/top", params={**WINDOW, **filters, "trend": 3}, headers=admin)

    assert top.status_code == 200, top.text
    assert (top.json()["slice"], top.json()["value"]) == (slice_name, value)
    assert top.json()["ads"] and as_rows(top.json()) == ranked(expected(keep))
    for ad in top.json()["ads"]:
        assert ad["trend"] == [expected(keep, (m,))[ad["ad_id"]] for m in MINUTES]
    for ad_id in ("a/3", "g2"):
        series = api.get(f"/v1/ads/{ad_id}/clicks", params={**WINDOW, **filters},
                         headers=admin)
        assert series.status_code == 200, series.text
        assert [(p["minute"], p["clicks"]) for p in series.json()["minutes"]] == [
            (iso(m), expected(keep, (m,))[ad_id]) for m in MINUTES]
        assert series.json()["total"] == expected(keep)[ad_id]
        assert (series.json()["slice"], series.json()["value"]) == (slice_name, value)


def test_a_value_no_click_carries_is_an_empty_answer_not_an_error(
        custom: Stack, api: TestClient) -> None:
    admin = bearer(make_key(custom, None))
    top = api.get("/v1/ads/top", params={**WINDOW, "dimension": "os:IOS"}, headers=admin)
    series = api.get("/v1/ads/a1/clicks", params={**WINDOW, "dimension": "os:IOS"},
                     headers=admin)

    assert top.status_code == 200 and top.json()["ads"] == []
    assert series.status_code == 200 and series.json()["total"] == 0


@pytest.mark.parametrize(("params", "reason", "said"), [
    ({"dimension": "carrier:x"}, "unconfigured_filter",
     f"the configured slices are {CONFIGURED}"),
    ({"country": "US", "dimension": "os:13"}, "unconfigured_combination",
     f"the configured slices are {CONFIGURED}"),
    ({"campaign_id": "c1", "dimension": "os:13"}, "unconfigured_combination",
     "campaign and advertiser combine with nothing"),
    ({"advertiser_id": "acme", "dimension": "os:13"}, "unconfigured_combination",
     "campaign and advertiser combine with nothing"),
    ({"dimension": ["os:13", "os:iOS"]}, "duplicate_filter", "'os' is given twice"),
    ({"dimension": "os"}, "malformed", "is not NAME:VALUE"),
    ({"dimension": "os:a*b"}, "malformed", "'*'"),
    ({"dimension": "country:US"}, "malformed", "filter it with country= instead"),
    ({"dimension": "OS:13"}, "malformed", "a-z, 0-9 and _"),
])
def test_a_custom_filter_the_api_cannot_serve_is_a_400_with_its_reason(
        custom: Stack, api: TestClient, params: dict[str, Any], reason: str,
        said: str) -> None:
    admin = bearer(make_key(custom, None))
    for path in ("/v1/ads/top", "/v1/ads/a1/clicks"):
        refused = api.get(path, params={**WINDOW, **params}, headers=admin)

        assert refused.status_code == 400, (path, refused.text)
        assert refused.json()["reason"] == reason, path
        assert said in refused.json()["detail"], path


def test_an_advertisers_key_reaches_only_its_own_ads_through_a_custom_filter(
        custom: Stack, api: TestClient) -> None:
    acme = bearer(make_key(custom, "acme"))
    cases: list[tuple[dict[str, Any], Keep]] = [
        ({"dimension": "os:iOS"}, dim("os", "iOS")),
        ({"dimension": ["os:13", "device_model:Pixel 7"]},
         lambda c: dim("os", "13")(c) and dim("device_model", "Pixel 7")(c)),
        ({"device": "desktop", "dimension": "os:ios"},
         lambda c: c.device == "desktop" and dim("os", "ios")(c))]
    for filters, keep in cases:
        top = api.get("/v1/ads/top", params={**WINDOW, **filters, "trend": 2}, headers=acme)
        assert top.status_code == 200, top.text
        every = expected(keep)
        own = Counter({ad: n for ad, n in every.items() if OWNERS[ad][1] == "acme"})
        assert as_rows(top.json()) == ranked(own)
        assert own != every  # globex has clicks of this value too
        own_series = api.get("/v1/ads/a1/clicks", params={**WINDOW, **filters}, headers=acme)
        assert own_series.json()["total"] == expected(keep)["a1"]
        # Another advertiser's ad is a 404 as an unknown one is, filter or not.
        for ad_id in ("g1", "no-such-ad"):
            hidden = api.get(f"/v1/ads/{ad_id}/clicks", params={**WINDOW, **filters},
                             headers=acme)
            assert hidden.status_code == 404, hidden.text
            assert hidden.json() == {"detail": f"no ad {ad_id!r} among this key's ads"}


def test_the_document_names_the_configured_custom_dimensions_in_the_filters_pattern(
        custom: Stack) -> None:
    for client in serve(custom, api_open=True, dimensions=DIMENSIONS):
        paths = client.get("/openapi.json").json()["paths"]
        for path in ("/v1/ads/top", "/v1/ads/{ad_id}/clicks"):
            (parameter,) = [p for p in paths[path]["get"]["parameters"]
                            if p["name"] == "dimension"]
            assert parameter["schema"]["type"] == "array"
            pattern = parameter["schema"]["items"]["pattern"]
            named = re.fullmatch(r"\^\$\|\^\(\?:([a-z0-9_|]+)\):.*", pattern)
            assert named is not None and named.group(1) == "device_model|os", pattern
            # One item per custom dimension some slice has: more give one twice.
            assert parameter["schema"]["maxItems"] == 2
            # Every name the pattern admits is served alone, its example too.
            for name in named.group(1).split("|"):
                alone = client.get(path.replace("{ad_id}", "a1"),
                                   params={**WINDOW, "dimension": f"{name}:x"})
                assert alone.status_code == 200, alone.text
            example = parameter["examples"]["one"]["value"]
            assert client.get(path.replace("{ad_id}", "a1"),
                              params={**WINDOW, "dimension": example}).status_code == 200
        too_many = client.get("/v1/ads/top", params={
            **WINDOW, "dimension": ["os:1", "device_model:2", ""]})
        assert too_many.status_code == 400 and too_many.json()["reason"] == "malformed"
        assert all(p["name"] != "dimension"
                   for p in paths["/v1/advertisers/{advertiser_id}/ads/top"]["get"].get(
                       "parameters", []))
    # Without a custom dimension configured alone the parameter is left out, and a
    # request that sends it anyway is refused naming the configured slices.
    for client in serve(custom, api_open=True, dimensions="country,device,device*os"):
        top = client.get("/openapi.json").json()["paths"]["/v1/ads/top"]["get"]
        assert "dimension" not in {p["name"] for p in top["parameters"]}
        refused = client.get("/v1/ads/top", params={**WINDOW, "dimension": "os:13"})
        assert refused.status_code == 400
        assert refused.json()["reason"] == "unconfigured_filter"
        assert "country, device, device*os, campaign, advertiser" in refused.json()["detail"]


# A day of minutes with built hour and day rollups, and edge minutes either side.
DAY0 = start_of(BASE, DAY) + DAY
LONG_MINUTES = (DAY0 - 30 * MINUTE, DAY0 + 5 * MINUTE, DAY0 + 3 * HOUR + 7 * MINUTE,
                DAY0 + 23 * HOUR + 59 * MINUTE, DAY0 + DAY + 2 * MINUTE)
LONG_CLICKS = make_clicks(per_minute=150, seed=21, minutes=LONG_MINUTES)


def test_a_custom_filter_over_built_days_hours_and_edge_minutes_equals_its_clicks(
        stack: Stack) -> None:
    write_custom_slices(stack, clicks=LONG_CLICKS)
    set_watermark(stack, max(LONG_MINUTES))
    names = slice_store.slice_names(parse_dimensions(DIMENSIONS))
    built = slice_rollup_builds.build_period(stack.engine(), names, "day", DAY0)
    assert ("day", DAY0, "device_model*os") in {(g, p, n) for g, p, n, _ in built.periods}

    def counted(keep: Keep, first: int, last: int) -> Counter[str]:
        return Counter(c.ad_id for c in LONG_CLICKS if first <= c.minute <= last and keep(c))

    first, last = LONG_MINUTES[0], LONG_MINUTES[-1]
    cases: list[tuple[dict[str, Any], Keep]] = [
        ({"dimension": "os:iOS"}, dim("os", "iOS")),
        ({"dimension": ["os:13", "device_model:SM:G9"]},
         lambda c: dim("os", "13")(c) and dim("device_model", "SM:G9")(c)),
        ({"device": "mobile", "dimension": "os:ios"},
         lambda c: c.device == "mobile" and dim("os", "ios")(c))]
    for client in serve(stack, api_open=True, dimensions=DIMENSIONS):
        for filters, keep in cases:
            top = client.get("/v1/ads/top", params={
                "from": iso(first), "to": iso(last), **filters})
            assert top.status_code == 200, top.text
            assert top.json()["read"]["day"] == 1, top.json()["read"]  # the built day
            assert as_rows(top.json()) == ranked(counted(keep, first, last)), filters
            for granularity, grain in (("hour", HOUR), ("day", DAY)):
                series = client.get("/v1/ads/a1/clicks", params={
                    "from": iso(first), "to": iso(last), "granularity": granularity,
                    **filters})
                assert series.status_code == 200, series.text
                per_period = Counter(start_of(c.minute, grain) for c in LONG_CLICKS
                                     if c.ad_id == "a1" and keep(c))
                assert {p[granularity]: p["clicks"] for p in series.json()[f"{granularity}s"]
                        if p["clicks"]} == {iso(at): n for at, n in per_period.items()}
                assert series.json()["total"] == counted(keep, first, last)["a1"]
