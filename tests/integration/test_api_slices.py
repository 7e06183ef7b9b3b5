"""Filters and the per-campaign and per-advertiser endpoints against real slice rows.

The slice rows (agg.slice_values, agg.slice_minutes and their hour and day rollups)
are made by the real writer (pipeline/slice_aggregation.py) from raw clicks this
test stores, and every answer is compared with sums computed straight from those
clicks (docs/design.md §2.10, "Filters"), never from agg.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from farloom_tasks.core import clicks as contract
from farloom_tasks.core.dimensions import parse_dimensions
from farloom_tasks.core.partitions import DAY, HOUR, start_of
from farloom_tasks.core.windows import MINUTE, iso, minute_of
from farloom_tasks.pipeline import slice_aggregation, slice_rollup_builds
from farloom_tasks.stores import slice_reads
from farloom_tasks.stores import slices as slice_store
from farloom_tasks.stores.raw import RawStore
from tests.integration.test_api import BASE, put_minute
from tests.integration.test_api_keys import bearer, make_key, serve
from tests.support.minute_checks import set_watermark
from tests.support.stack import Stack


class Click(NamedTuple):
    minute: int
    ad_id: str
    country: str | None
    device: str | None


# ad -> (campaign, advertiser). "shared" has ads of both advertisers.
OWNERS = {"a1": ("c1", "acme"), "a2": ("c1", "acme"), "x/y": ("c/2", "acme"),
          "a4": ("shared", "acme"), "g1": ("g-camp", "globex"), "g2": ("shared", "globex")}
SLICE_MINUTES = (BASE, BASE + 60, BASE + 120)
UNSLICED_MINUTE = BASE + 180  # closed in minute_totals, its slices not written yet
# c/2's only ad has no click in the middle minute: a 0 there, not a gap.
ADS_OF_MINUTE = {BASE: list(OWNERS), BASE + 60: [ad for ad in OWNERS if ad != "x/y"],
                 BASE + 120: list(OWNERS), UNSLICED_MINUTE: ["a1", "g1"]}


def make_clicks(ads_of_minute: dict[int, list[str]], per_minute: int = 300,
                seed: int = 13) -> list[Click]:
    rng = random.Random(seed)
    clicks = []
    for minute, ads in ads_of_minute.items():
        for _ in range(per_minute):
            clicks.append(Click(minute, rng.choice(ads), rng.choice(["US", "DE", "FR", None]),
                                rng.choice(["mobile", "desktop", None])))
    return clicks


CLICKS = make_clicks(ADS_OF_MINUTE)
Keep = Callable[[Click], bool]


def write_slices(stack: Stack, clicks: Iterable[Click], dimensions: str,
                 slice_minutes: Iterable[int],
                 owners: Mapping[str, tuple[str, str]] = OWNERS) -> None:
    """Store ``clicks`` in raw (which fills the ads catalog from their owners), then make
    the slices of ``slice_minutes`` with the real writer, rollups included."""
    stored = [contract.Click(f"{click.minute}-{i}", click.ad_id, click.minute + i % 60 + 0.25,
                             country=click.country, device=click.device,
                             campaign_id=owners[click.ad_id][0],
                             advertiser_id=owners[click.ad_id][1])
              for i, click in enumerate(clicks)]
    raw = RawStore(stack.engine(), stack.settings.shard_count)
    try:
        raw.commit_batch(stored)
    finally:
        raw.close()
    for minute in sorted(set(slice_minutes)):
        slice_aggregation.aggregate(
            stack.engine(), parse_dimensions(dimensions), minute=minute, revision=1,
            partition_hours=stack.settings.minute_partition_hours,
            work_mem_mb=stack.settings.slice_work_mem_mb)


def put_slices(stack: Stack, slices: tuple[str, ...]) -> None:
    """CLICKS in raw, and the slices of SLICE_MINUTES (``slices``' dimensions and
    combinations; campaign and advertiser always) made from them."""
    dimensions = ",".join(s for s in slices if s not in ("campaign", "advertiser"))
    write_slices(stack, CLICKS, dimensions, SLICE_MINUTES)


def expected(keep: Any, minutes: tuple[int, ...] = SLICE_MINUTES) -> Counter[str]:
    """Clicks per ad of the clicks ``keep`` takes, straight from CLICKS."""
    return Counter(c.ad_id for c in CLICKS if c.minute in minutes and keep(c))


def ranked(sums: Counter[str]) -> list[list[object]]:
    order = sorted(sums.items(), key=lambda item: (-item[1], item[0]))
    return [[rank, ad, n] for rank, (ad, n) in enumerate(order, 1)]


def as_rows(body: dict[str, Any]) -> list[list[object]]:
    return [[ad["rank"], ad["ad_id"], ad["clicks"]] for ad in body["ads"]]


ALL_SLICES = ("country", "device", "country*device", "campaign", "advertiser")


@pytest.fixture
def sliced(stack: Stack) -> Stack:
    for minute in ADS_OF_MINUTE:
        put_minute(stack, minute, Counter(c.ad_id for c in CLICKS if c.minute == minute))
    put_slices(stack, ALL_SLICES)
    return stack


@pytest.fixture
def api(sliced: Stack) -> Iterator[TestClient]:
    """Default slices (country, device): keys required."""
    yield from serve(sliced, api_open=False, dimensions="country,device")


@pytest.fixture
def combined(sliced: Stack) -> Iterator[TestClient]:
    yield from serve(sliced, api_open=True, dimensions="country,device,country*device")


WINDOW = {"from": iso(BASE), "to": iso(BASE + 120)}


def test_a_filtered_top_and_series_equal_sums_over_the_clicks_of_the_value(
        sliced: Stack, api: TestClient) -> None:
    admin = bearer(make_key(sliced, None))
    cases = [({"country": "us"}, lambda c: c.country == "US"),
             ({"device": "MOBILE"}, lambda c: c.device == "mobile"),
             ({"campaign_id": "shared"}, lambda c: OWNERS[c.ad_id][0] == "shared"),
             ({"advertiser_id": "globex"}, lambda c: OWNERS[c.ad_id][1] == "globex")]
    for filters, keep in cases:
        top = api.get("/v1/ads/top", params={**WINDOW, **filters, "trend": 3}, headers=admin)
        assert top.status_code == 200, top.text
        assert as_rows(top.json()) == ranked(expected(keep)), filters
        for ad in top.json()["ads"]:
            assert ad["trend"] == [expected(keep, (m,))[ad["ad_id"]] for m in SLICE_MINUTES]
        series = api.get("/v1/ads/a1/clicks", params={**filters, "from": iso(BASE),
                                                      "to": iso(UNSLICED_MINUTE)}, headers=admin)
        assert series.status_code == 200, series.text
        # The minute whose slices are not written yet is left out, not shown as 0.
        assert [(p["minute"], p["clicks"]) for p in series.json()["minutes"]] == [
            (iso(m), expected(keep, (m,))["a1"]) for m in SLICE_MINUTES], filters
        assert series.json()["total"] == expected(keep)["a1"]
    # Without from/to the window ends at the newest minute closed for the slice.
    latest = api.get("/v1/ads/top", params={"country": "US", "minutes": 1}, headers=admin)
    assert latest.json()["to"] == iso(BASE + 120)
    assert as_rows(latest.json()) == ranked(expected(lambda c: c.country == "US",
                                                     (BASE + 120,)))


def test_country_and_device_together_are_served_only_where_their_combination_is_configured(
        sliced: Stack, api: TestClient, combined: TestClient) -> None:
    both = {**WINDOW, "country": "FR", "device": "desktop"}
    refused = api.get("/v1/ads/top", params=both, headers=bearer(make_key(sliced, None)))
    served = combined.get("/v1/ads/top", params=both)
    series = combined.get("/v1/ads/g1/clicks", params=both)

    assert refused.status_code == 400
    assert refused.json()["reason"] == "unconfigured_combination"
    assert "country, device, campaign, advertiser" in refused.json()["detail"]
    keep = lambda c: c.country == "FR" and c.device == "desktop"  # noqa: E731
    assert served.status_code == 200, served.text
    assert (served.json()["slice"], served.json()["value"]) == ("country*device", "FR*desktop")
    assert as_rows(served.json()) == ranked(expected(keep))
    assert series.json()["total"] == expected(keep)["g1"]
    owner_and_dimension = combined.get("/v1/ads/top", params={"country": "FR",
                                                              "campaign_id": "c1"})
    assert owner_and_dimension.json()["reason"] == "unconfigured_combination"


def test_an_unconfigured_filter_is_a_400_naming_the_configured_slices_and_is_not_documented(
        sliced: Stack) -> None:
    for client in serve(sliced, api_open=True, dimensions="country"):
        refused = client.get("/v1/ads/top", params={"device": "tv"})
        documented = client.get("/openapi.json").json()["paths"]["/v1/ads/top"]["get"]

        assert refused.status_code == 400
        assert refused.json()["reason"] == "unconfigured_filter"
        assert "the configured slices are country, campaign, advertiser" in (
            refused.json()["detail"])
        names = {parameter["name"] for parameter in documented["parameters"]}
        assert {"country", "campaign_id", "advertiser_id"} <= names and "device" not in names


@pytest.mark.parametrize(("path", "params", "reason"), [
    ("/v1/ads/top", {"country": "US", "minutes": 90 * 1440 + 1}, "malformed"),
    ("/v1/ads/top", {"device": "tv", "from": "2026-08-01", "to": "2026-11-29"},
     "window_too_long"),
    ("/v1/advertisers/acme/ads/top", {"from": "2026-01-01", "to": "2026-11-29"},
     "window_too_long"),
    ("/v1/ads/a1/clicks", {"country": "US", "granularity": "hour", "from": "2026-01-01",
                           "to": "2026-11-29"}, "window_too_long"),
    ("/v1/campaigns/c1/clicks", {"granularity": "day", "from": "2026-01-01",
                                 "to": "2026-11-29"}, "window_too_long"),
    ("/v1/advertisers/acme/clicks", {"from": iso(BASE), "to": iso(BASE + 7 * DAY)},
     "window_too_long"),
    ("/v1/ads/top", {"country": "ZZ"}, "malformed"),
    ("/v1/ads/top", {"device": "phone"}, "malformed"),
    ("/v1/ads/top", {"campaign_id": "x" * 65}, "malformed"),
])
def test_a_filter_the_api_cannot_serve_is_a_400_with_its_reason(
        sliced: Stack, combined: TestClient, path: str, params: dict[str, object],
        reason: str) -> None:
    response = combined.get(path, params=params)
    assert response.status_code == 400, response.text
    assert response.json()["reason"] == reason


def test_campaign_and_advertiser_clicks_per_minute_equal_the_clicks_with_zero_minutes(
        sliced: Stack, combined: TestClient) -> None:
    to_unsliced = {"from": iso(BASE), "to": iso(UNSLICED_MINUTE)}
    for path, keep in [
            ("/v1/campaigns/c/2/clicks", lambda c: OWNERS[c.ad_id][0] == "c/2"),
            ("/v1/campaigns/shared/clicks", lambda c: OWNERS[c.ad_id][0] == "shared"),
            ("/v1/advertisers/acme/clicks", lambda c: OWNERS[c.ad_id][1] == "acme")]:
        body = combined.get(path, params=to_unsliced).json()
        assert [(p["minute"], p["clicks"]) for p in body["minutes"]] == [
            (iso(m), sum(expected(keep, (m,)).values())) for m in SLICE_MINUTES], path
        assert body["total"] == sum(expected(keep).values())
    assert combined.get("/v1/campaigns/c/2/clicks", params=WINDOW).json()["minutes"][1][
        "clicks"] == 0
    top = combined.get("/v1/advertisers/globex/ads/top", params=WINDOW).json()
    assert as_rows(top) == ranked(expected(lambda c: OWNERS[c.ad_id][1] == "globex"))
    unknown = [combined.get(f"/v1/{kind}/nobody/{end}") for kind, end in [
        ("campaigns", "clicks"), ("advertisers", "clicks"), ("advertisers", "ads/top")]]
    assert [r.status_code for r in unknown] == [404, 404, 404]


def test_another_advertisers_campaigns_advertiser_and_ads_are_unreachable_through_every_filter(
        sliced: Stack, api: TestClient) -> None:
    acme = bearer(make_key(sliced, "acme"))

    def get(path: str, **params: Any) -> tuple[int, Any]:
        response = api.get(path, params={**WINDOW, **params}, headers=acme)
        return response.status_code, response.json()

    def without_id(body: Any, name: str) -> str:
        return str(body["detail"]).replace(repr(name), "ID")

    # The other's campaign, advertiser and its top: a 404 with an unknown one's body.
    for kind, end, theirs in [("campaigns", "clicks", "g-camp"),
                              ("advertisers", "clicks", "globex"),
                              ("advertisers", "ads/top", "globex")]:
        foreign, unknown = get(f"/v1/{kind}/{theirs}/{end}"), get(f"/v1/{kind}/nobody/{end}")
        assert foreign[0] == unknown[0] == 404, (kind, end)
        assert without_id(foreign[1], theirs) == without_id(unknown[1], "nobody")
    # A campaign both share: only acme's own ads' clicks in it.
    shared = get("/v1/campaigns/shared/clicks")[1]
    assert shared["total"] == sum(expected(lambda c: c.ad_id == "a4").values())
    # Filters narrow the key's own ads; the other's values give what nobody's give.
    own = lambda c: OWNERS[c.ad_id][1] == "acme"  # noqa: E731
    for filters, keep in [({"country": "US"}, lambda c: c.country == "US"),
                          ({"device": "desktop"}, lambda c: c.device == "desktop"),
                          ({"campaign_id": "shared"}, lambda c: OWNERS[c.ad_id][0] == "shared"),
                          ({"advertiser_id": "acme"}, lambda c: True)]:
        status, body = get("/v1/ads/top", **filters)
        assert status == 200
        assert as_rows(body) == ranked(expected(both(own, keep))), filters
    for filters in ({"campaign_id": "g-camp"}, {"advertiser_id": "globex"},
                    {"advertiser_id": "nobody"}):
        status, body = get("/v1/ads/top", **filters)
        assert (status, body["ads"]) == (200, []), filters
    for filters in ({"country": "US"}, {"advertiser_id": "globex"}, {"campaign_id": "shared"}):
        foreign, unknown = get("/v1/ads/g2/clicks", **filters), get("/v1/ads/zz/clicks",
                                                                   **filters)
        assert foreign[0] == unknown[0] == 404, filters
        assert without_id(foreign[1], "g2") == without_id(unknown[1], "zz")


def test_an_advertisers_key_sees_only_its_own_ads_in_a_configured_combination(
        sliced: Stack) -> None:
    both = {**WINDOW, "country": "fr", "device": "Desktop", "trend": 3}
    for client in serve(sliced, api_open=False, dimensions="country,device,country*device"):
        acme = client.get("/v1/ads/top", params=both, headers=bearer(make_key(sliced, "acme")))
        foreign = client.get("/v1/ads/g1/clicks", params={"country": "FR", "device": "desktop"},
                             headers=bearer(make_key(sliced, "acme")))

        keep = lambda c: (c.country == "FR" and c.device == "desktop"  # noqa: E731
                          and OWNERS[c.ad_id][1] == "acme")
        assert acme.status_code == 200, acme.text
        assert as_rows(acme.json()) == ranked(expected(keep))
        assert foreign.status_code == 404


# Windows over whole days and hours: sparse minutes around one UTC day, so that a window
# reads days and hours from the rollups and its edges from minute rows.
DAY0 = minute_of(datetime(2026, 11, 20, tzinfo=UTC).timestamp())
LONG_MINUTES = (
    DAY0 - 3 * MINUTE,  # before the long window
    DAY0 - 2 * MINUTE, DAY0 - MINUTE,  # its first edge minutes
    DAY0, DAY0 + 5 * HOUR + 17 * MINUTE, DAY0 + 23 * HOUR + 59 * MINUTE,  # its whole day
    DAY0 + DAY + 10 * MINUTE, DAY0 + DAY + 45 * MINUTE,  # its whole hour
    DAY0 + DAY + HOUR, DAY0 + DAY + HOUR + MINUTE,  # its last edge minutes
    DAY0 + DAY + HOUR + 2 * MINUTE,  # after it
)
LONG_CLICKS = make_clicks({minute: list(OWNERS) for minute in LONG_MINUTES}, 150, seed=14)
LONG_WINDOW = (DAY0 - 2 * MINUTE, DAY0 + DAY + HOUR + MINUTE)
# Inside hours at both ends: 50 edge minutes, 18 whole hours, 51 edge minutes.
UNALIGNED_WINDOW = (DAY0 + 5 * HOUR + 10 * MINUTE, DAY0 + DAY + 50 * MINUTE)
# DAY0 is built (its rollups and its hours'); the hour after it is left unbuilt, so a
# window reads that hour from its minutes (core.tiling.tile_built).
READ = {LONG_WINDOW: {"day": 1, "hour": 0, "minute": 4 + 60},
        UNALIGNED_WINDOW: {"day": 0, "hour": 18, "minute": 101}}

def long_expected(keep: Keep, first: int, last: int) -> Counter[str]:
    return Counter(c.ad_id for c in LONG_CLICKS if first <= c.minute <= last and keep(c))


def periods(keep: Keep, grain: int, first: int, last: int,
            count: Callable[[Click], bool]) -> list[tuple[str, int]]:
    """The series by hour or day a filtered read must give, from the clicks alone: every
    period of first..last from the value's first one with clicks through the one holding
    the newest minute written, with the clicks ``count`` takes among the value's."""
    kept = [c for c in LONG_CLICKS if keep(c)]
    low = max(start_of(first, grain), min(start_of(c.minute, grain) for c in kept))
    high = min(start_of(last, grain), start_of(max(LONG_MINUTES), grain))
    return [(iso(at), sum(1 for c in kept if start_of(c.minute, grain) == at and count(c)))
            for at in range(low, high + 1, grain)]


def both(one: Keep, other: Keep) -> Keep:
    return lambda click: one(click) and other(click)


def of_ad(ad_id: str) -> Keep:
    return lambda click: click.ad_id == ad_id


def window(first: int, last: int) -> dict[str, str]:
    return {"from": iso(first), "to": iso(last)}


@pytest.fixture
def long_sliced(stack: Stack) -> Stack:
    for minute in LONG_MINUTES:
        put_minute(stack, minute, Counter(c.ad_id for c in LONG_CLICKS if c.minute == minute))
    dimensions = "country,device,country*device"
    write_slices(stack, LONG_CLICKS, dimensions, LONG_MINUTES)
    # The rollup builder, as beat's sweep would run it once the minutes are closed.
    set_watermark(stack, max(LONG_MINUTES))
    names = slice_store.slice_names(parse_dimensions(dimensions))
    built = slice_rollup_builds.build_period(stack.engine(), names, "day", DAY0)
    assert {(grain, period) for grain, period, _, _ in built.periods} == {
        ("day", DAY0), *(("hour", DAY0 + h * HOUR) for h in range(24))}
    return stack


@pytest.fixture
def long_api(long_sliced: Stack) -> Iterator[TestClient]:
    yield from serve(long_sliced, api_open=False, dimensions="country,device,country*device")


FILTERS: list[tuple[dict[str, str], Keep]] = [
    ({"country": "us"}, lambda c: c.country == "US"),
    ({"device": "desktop"}, lambda c: c.device == "desktop"),
    ({"country": "DE", "device": "mobile"}, lambda c: (c.country, c.device) == ("DE", "mobile")),
    ({"campaign_id": "shared"}, lambda c: OWNERS[c.ad_id][0] == "shared"),
    ({"advertiser_id": "acme"}, lambda c: OWNERS[c.ad_id][1] == "acme")]


@pytest.mark.parametrize("span", [LONG_WINDOW, UNALIGNED_WINDOW], ids=["aligned", "unaligned"])
def test_a_filtered_top_over_days_hours_and_edge_minutes_equals_the_clicks_of_its_window(
        long_sliced: Stack, long_api: TestClient, span: tuple[int, int]) -> None:
    admin = bearer(make_key(long_sliced, None))
    first, last = span
    for filters, keep in FILTERS:
        top = long_api.get("/v1/ads/top", params={**window(first, last), **filters, "n": 3},
                           headers=admin)
        assert top.status_code == 200, top.text
        assert top.json()["read"] == READ[span], filters
        assert as_rows(top.json()) == ranked(long_expected(keep, first, last))[:3], filters
    # The same window as `minutes` ending at `at`.
    by_length = long_api.get("/v1/ads/top", headers=admin, params={
        "country": "US", "at": iso(last), "minutes": (last - first) // MINUTE + 1})
    assert as_rows(by_length.json()) == ranked(
        long_expected(lambda c: c.country == "US", first, last))


def test_a_filtered_series_by_hour_and_by_day_equals_the_clicks_of_each_period(
        long_sliced: Stack, long_api: TestClient) -> None:
    admin = bearer(make_key(long_sliced, None))
    ranges = {"hour": (HOUR, DAY0 - HOUR, DAY0 + DAY + 3 * HOUR),
              "day": (DAY, DAY0 - DAY, DAY0 + 2 * DAY)}
    for granularity, (grain, first, last) in ranges.items():
        for filters, keep in FILTERS:
            for ad in ("a4", "g2"):
                series = long_api.get(f"/v1/ads/{ad}/clicks", headers=admin, params={
                    **window(first, last), **filters, "granularity": granularity})
                assert series.status_code == 200, series.text
                wanted = periods(keep, grain, first, last, of_ad(ad))
                body = series.json()
                assert [(p[granularity], p["clicks"]) for p in body[f"{granularity}s"]] == (
                    wanted), (granularity, filters, ad)
                assert body["total"] == sum(n for _, n in wanted)
                assert (body["slice"], body["granularity"]) == (
                    "country*device" if len(filters) == 2 else
                    {"campaign_id": "campaign", "advertiser_id": "advertiser"}.get(
                        next(iter(filters)), next(iter(filters))), granularity)


def test_campaign_and_advertiser_clicks_by_hour_and_day_and_an_advertisers_long_top(
        long_sliced: Stack, long_api: TestClient) -> None:
    admin = bearer(make_key(long_sliced, None))
    ranges = {"hour": (HOUR, DAY0 - 2 * HOUR, DAY0 + DAY + 2 * HOUR),
              "day": (DAY, DAY0 - DAY, DAY0 + DAY)}
    for granularity, (grain, first, last) in ranges.items():
        for path, keep in [
                ("/v1/campaigns/c/2/clicks", lambda c: OWNERS[c.ad_id][0] == "c/2"),
                ("/v1/campaigns/shared/clicks", lambda c: OWNERS[c.ad_id][0] == "shared"),
                ("/v1/advertisers/globex/clicks", lambda c: OWNERS[c.ad_id][1] == "globex")]:
            body = long_api.get(path, headers=admin, params={
                **window(first, last), "granularity": granularity}).json()
            wanted = periods(keep, grain, first, last, lambda c: True)
            assert [(p[granularity], p["clicks"]) for p in body[f"{granularity}s"]] == wanted
            assert body["total"] == sum(n for _, n in wanted), (path, granularity)
    for span in (LONG_WINDOW, UNALIGNED_WINDOW):
        top = long_api.get("/v1/advertisers/acme/ads/top", headers=admin,
                           params=window(*span)).json()
        assert top["read"] == READ[span]
        assert as_rows(top) == ranked(long_expected(lambda c: OWNERS[c.ad_id][1] == "acme",
                                                    *span))


def test_an_advertisers_key_reaches_only_its_own_data_through_every_rollup_path(
        long_sliced: Stack, long_api: TestClient) -> None:
    acme = bearer(make_key(long_sliced, "acme"))
    own: Keep = lambda c: OWNERS[c.ad_id][1] == "acme"  # noqa: E731
    first, last = LONG_WINDOW

    def get(path: str, **params: Any) -> tuple[int, Any]:
        response = long_api.get(path, params={**window(first, last), **params}, headers=acme)
        return response.status_code, response.json()

    for filters, keep in FILTERS:
        status, body = get("/v1/ads/top", **filters)
        assert status == 200 and body["read"] == READ[LONG_WINDOW]
        assert as_rows(body) == ranked(long_expected(both(own, keep),
                                                     first, last)), filters
    for filters in ({"campaign_id": "g-camp"}, {"advertiser_id": "globex"},
                    {"advertiser_id": "nobody"}):
        status, body = get("/v1/ads/top", **filters)
        assert (status, body["ads"]) == (200, []), filters
    for granularity in ("hour", "day"):
        # Another's ad under a filter, another's advertiser: an unknown one's 404.
        foreign = get("/v1/ads/g1/clicks", country="US", granularity=granularity)
        unknown = get("/v1/ads/zz/clicks", country="US", granularity=granularity)
        assert foreign[0] == unknown[0] == 404
        assert foreign[1]["detail"].replace("'g1'", "ID") == unknown[1]["detail"].replace(
            "'zz'", "ID")
        for end in ("clicks", "ads/top"):
            params = {"granularity": granularity} if end == "clicks" else {}
            assert get(f"/v1/advertisers/globex/{end}", **params)[0] == 404
        # A campaign both share: only acme's own ads' clicks in each period.
        status, shared = get("/v1/campaigns/shared/clicks", granularity=granularity)
        grain = HOUR if granularity == "hour" else DAY
        wanted = periods(lambda c: OWNERS[c.ad_id][0] == "shared", grain, first, last,
                         lambda c: c.ad_id == "a4")
        assert status == 200
        assert [(p[granularity], p["clicks"]) for p in shared[f"{granularity}s"]] == wanted
        assert shared["total"] == sum(n for _, n in wanted) > 0


# More ads in a minute than a top's first heads read (slice_reads.head_depths), so the
# edge minutes are summed from their heads with bounds (core.ranked_heads).
WIDE_DAY = minute_of(datetime(2026, 11, 10, tzinfo=UTC).timestamp())
WIDE_ADS = [f"w{i:04d}" for i in range(1200)]


def wide_clicks() -> list[Click]:
    """Three minutes: every wide ad once a minute in the US; a few heavy ads on top (the
    top settles from the heads), and one minute in DE where the ads are level (it
    does not: the bound of the unread ads equals the n-th)."""
    clicks = []
    for minute in (WIDE_DAY + 10 * MINUTE, WIDE_DAY + 11 * MINUTE, WIDE_DAY + 12 * MINUTE):
        clicks += [Click(minute, ad, "US", None) for ad in WIDE_ADS]
        clicks += [Click(minute, WIDE_ADS[i * 7], "US", "tv") for i in range(25)
                   for _ in range(25 - i)]
        clicks += [Click(minute, ad, "DE", None) for ad in WIDE_ADS[:1100]]
    return clicks


def test_a_top_of_more_ads_than_its_heads_read_equals_the_clicks_settled_or_not(
        stack: Stack) -> None:
    clicks = wide_clicks()
    write_slices(stack, clicks, "country,device", sorted({c.minute for c in clicks}),
                 dict.fromkeys(WIDE_ADS, ("wide", "wide-co")))
    first, last = WIDE_DAY, WIDE_DAY + 30 * MINUTE
    for client in serve(stack, api_open=True, dimensions="country,device"):
        for country, n in (("US", 5), ("US", 100), ("DE", 3), ("DE", 1000)):
            top = client.get("/v1/ads/top", params={**window(first, last), "country": country,
                                                     "n": n})
            wanted = Counter(c.ad_id for c in clicks if c.country == country)
            assert top.status_code == 200, top.text
            assert as_rows(top.json()) == ranked(wanted)[:n], (country, n)


# The same wide ads in three minutes of WIDE_DAY's first hour and one of the next day,
# with WIDE_DAY built (its day and its 24 hours): more ads in a built hour or day than
# a top's first heads read, so those tiles too are read by their ranked heads.
WIDE_NEXT_DAY_MINUTE = WIDE_DAY + DAY + 5 * MINUTE
# The last wide ad, past every head of the built tiles (it ties the rest and sorts
# last), is heavy in one later minute: a top over both that ranks it by its head
# alone, without the day's bound, would miss its clicks in the day.
WIDE_LATE_MINUTE = WIDE_DAY + DAY + 40 * MINUTE


def wide_built_clicks() -> list[Click]:
    clicks = wide_clicks()
    clicks += [Click(WIDE_NEXT_DAY_MINUTE, ad, "US", None) for ad in WIDE_ADS]
    clicks += [Click(WIDE_NEXT_DAY_MINUTE, ad, "DE", None) for ad in WIDE_ADS[:1100]]
    clicks += [Click(WIDE_LATE_MINUTE, WIDE_ADS[-1], "US", None)] * 70
    return clicks


def counted_top(stack: Stack, value: str, first: int, last: int,
                n: int) -> tuple[list[list[object]], int, bool]:
    """slice_reads' top of the country value over first..last, with how many heads
    statements it ran and whether it read every row."""
    statements: list[str] = []
    engine = stack.engine()

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        with engine.connect() as conn:
            runs = slice_reads.built_tiling(conn, "country", first, last + MINUTE)
            statements.clear()
            top = slice_reads.top_ads_tiled(conn, "country", value, runs, n=n, advertiser=None)
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    heads = sum("WITH heads" in statement for statement in statements)
    return ([[ad.rank, ad.ad_id, ad.clicks] for ad in top], heads,
            len(statements) > heads)


def test_built_hours_and_days_are_read_by_their_heads_settled_or_deeper(stack: Stack) -> None:
    clicks = wide_built_clicks()
    minutes = sorted({c.minute for c in clicks})
    write_slices(stack, clicks, "country,device", minutes,
                 dict.fromkeys(WIDE_ADS, ("wide", "wide-co")))
    set_watermark(stack, max(minutes))
    names = slice_store.slice_names(parse_dimensions("country,device"))
    built = slice_rollup_builds.build_period(stack.engine(), names, "day", WIDE_DAY)
    assert ("day", WIDE_DAY, "country") in {(g, p, s) for g, p, s, _ in built.periods}

    def wanted(country: str, first: int, last: int) -> list[list[object]]:
        return ranked(Counter(c.ad_id for c in clicks
                              if c.country == country and first <= c.minute <= last))

    one_hour = (WIDE_DAY, WIDE_DAY + HOUR - MINUTE)
    one_day = (WIDE_DAY, WIDE_DAY + DAY - MINUTE)
    day_and_edges = (WIDE_DAY, WIDE_DAY + DAY + 30 * MINUTE)
    # Edge minutes of the first hour, 23 built hours without a row for the value (tiles
    # with no head and bound 0), then edge minutes of the next day.
    hours_and_edges = (WIDE_DAY + 11 * MINUTE, WIDE_DAY + DAY + 30 * MINUTE)
    day_and_late = (WIDE_DAY, WIDE_DAY + DAY + 50 * MINUTE)
    # (window, country, n) -> (heads statements, every row read): a single tile is its
    # first n rows; US's heavy ads settle at once, but its 100th is level with the rest
    # (as is any DE ad), and the late heavy ad is in its minute's head but not the
    # day's, so those tops read deeper, where the heads are every row.
    cases = {(one_hour, "US", 5): (1, False), (one_hour, "DE", 3): (1, False),
             (one_day, "US", 100): (1, False), (one_day, "DE", 1000): (1, False),
             (day_and_edges, "US", 5): (1, False), (day_and_edges, "US", 100): (2, False),
             (day_and_edges, "DE", 3): (2, False), (hours_and_edges, "US", 5): (1, False),
             (hours_and_edges, "DE", 3): (2, False), (hours_and_edges, "DE", 1000): (1, False),
             (day_and_late, "US", 5): (2, False)}
    for (span, country, n), reads in cases.items():
        top, heads, whole = counted_top(stack, country, *span, n)
        assert top == wanted(country, *span)[:n], (span, country, n)
        assert (heads, whole) == reads, (span, country, n)
    for client in serve(stack, api_open=True, dimensions="country,device"):
        for span, read in ((one_hour, {"day": 0, "hour": 1, "minute": 0}),
                           (day_and_edges, {"day": 1, "hour": 0, "minute": 31}),
                           (day_and_late, {"day": 1, "hour": 0, "minute": 51})):
            for country, n in (("US", 5), ("US", 100), ("DE", 3)):
                top_ = client.get("/v1/ads/top", params={**window(*span), "country": country,
                                                          "n": n})
                assert top_.status_code == 200, top_.text
                assert top_.json()["read"] == read
                assert as_rows(top_.json()) == wanted(country, *span)[:n], (span, country)
