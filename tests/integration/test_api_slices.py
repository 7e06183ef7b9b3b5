"""Filters and the per-campaign and per-advertiser endpoints against real slice rows.

The slice rows (agg.slice_values, agg.slice_minutes) are written here from a list of
clicks, as the close would write them (migration 0012), and every answer is compared
with sums computed straight from those clicks (docs/design.md §2.10, "Filters").
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from farloom_tasks.core.windows import iso, to_datetime
from tests.integration.test_api import BASE, put_minute
from tests.integration.test_api_keys import bearer, make_key, serve
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


def make_clicks() -> list[Click]:
    rng = random.Random(13)
    clicks = []
    for minute, ads in ADS_OF_MINUTE.items():
        for _ in range(300):
            clicks.append(Click(minute, rng.choice(ads), rng.choice(["US", "DE", "FR", None]),
                                rng.choice(["mobile", "desktop", None])))
    return clicks


CLICKS = make_clicks()


def value_of(click: Click, slice_name: str) -> str | None:
    campaign, advertiser = OWNERS[click.ad_id]
    parts = {"country": click.country, "device": click.device, "campaign": campaign,
             "advertiser": advertiser}
    names = slice_name.split("*")
    if any(parts[name] is None for name in names):
        return None
    return "*".join(str(parts[name]) for name in names)


def put_slices(stack: Stack, slices: tuple[str, ...]) -> None:
    """The slice rows of CLICKS for SLICE_MINUTES, ranked as the close ranks them."""
    with stack.engine().begin() as conn:
        conn.execute(sa.text("SELECT raw.ensure_partition('agg.slice_values', :m, "
                             "interval '1 day', NULL, NULL)"), {"m": to_datetime(BASE)})
        for minute in SLICE_MINUTES:
            for slice_name in slices:
                counts: dict[str, Counter[str]] = defaultdict(Counter)
                for click in CLICKS:
                    value = value_of(click, slice_name)
                    if click.minute == minute and value is not None:
                        counts[value][click.ad_id] += 1
                conn.execute(sa.text("INSERT INTO agg.slice_minutes VALUES (:m, :s, 1, :c)"),
                             {"m": to_datetime(minute), "s": slice_name,
                              "c": sum(sum(c.values()) for c in counts.values())})
                for value, per_ad in counts.items():
                    ranked = sorted(per_ad.items(), key=lambda item: (-item[1], item[0]))
                    conn.execute(sa.text(
                        "INSERT INTO agg.slice_values VALUES (:m, :s, :v, 1, :c, :d, :ids, :n)"),
                        {"m": to_datetime(minute), "s": slice_name, "v": value,
                         "c": sum(per_ad.values()), "d": len(per_ad),
                         "ids": [ad for ad, _ in ranked], "n": [n for _, n in ranked]})


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
    with stack.engine().begin() as conn:
        conn.execute(sa.text("INSERT INTO agg.ads (ad_id, campaign_id, advertiser_id) "
                             "VALUES (:ad, :campaign, :advertiser)"),
                     [{"ad": ad, "campaign": c, "advertiser": a}
                      for ad, (c, a) in OWNERS.items()])
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
    ("/v1/ads/a1/clicks", {"country": "US", "granularity": "hour"}, "no_slice_rollups"),
    ("/v1/ads/a1/clicks", {"device": "tv", "granularity": "day"}, "no_slice_rollups"),
    ("/v1/ads/top", {"country": "US", "minutes": 1441}, "window_too_long"),
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
        assert as_rows(body) == ranked(expected(lambda c, k=keep: own(c) and k(c))), filters
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
