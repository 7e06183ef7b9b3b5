"""API keys against the real API and database: who may read what (docs/design.md §2.10).

Two advertisers share the platform; each key must see its own ads and nothing of the
other's, through every endpoint and granularity. Keys are made as `farloom api-key
create` makes them (core.api_keys and stores.api_keys); the CLI has its own tests.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from farloom_tasks.api.app import create_app
from farloom_tasks.core import api_keys as keys
from farloom_tasks.core.windows import iso
from farloom_tasks.stores import agg_reads, api_keys
from tests.integration.test_api import BASE, put_minute
from tests.support.stack import Stack

OWNERS = {"a": "acme", "b": "acme", "x/y": "acme", "z": "globex", "10": "globex",
          "B": "globex"}  # "ü" and "ad-9" are in no catalog row
MINUTES: dict[int, dict[str, int]] = {
    BASE: {"a": 5, "b": 5, "B": 5, "ad-9": 1, "10": 7},
    BASE + 60: {"a": 2, "z": 9, "10": 1},
    BASE + 120: {"b": 4, "ü": 4, "a": 1, "x/y": 2},
}
ADVERTISER_OF_NOBODY = "initech"  # a key for an advertiser with no ads at all


def own_clicks(advertiser: str, minute: int) -> tuple[int, int]:
    """(clicks, distinct ads) of the advertiser's ads in the minute."""
    own = [n for ad, n in MINUTES[minute].items() if OWNERS.get(ad) == advertiser]
    return sum(own), len(own)


def make_key(stack: Stack, advertiser: str | None) -> str:
    key = keys.generate()
    engine = stack.engine()
    try:
        with engine.begin() as conn:
            api_keys.create(conn, key_id=key.key_id, secret_sha256=keys.digest(key.secret),
                            advertiser_id=advertiser, label="test")
    finally:
        engine.dispose()
    return str(key)


def revoke(stack: Stack, key: str) -> None:
    parsed = keys.parse(key)
    assert parsed is not None
    engine = stack.engine()
    try:
        with engine.begin() as conn:
            assert api_keys.revoke(conn, parsed.key_id) is api_keys.Revocation.REVOKED
    finally:
        engine.dispose()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def platform(stack: Stack) -> Stack:
    """Three closed minutes of two advertisers' ads, with their hour and day rollups."""
    for minute, counts in MINUTES.items():
        put_minute(stack, minute, counts)
    with stack.engine().begin() as conn:
        conn.execute(sa.text("INSERT INTO agg.ads (ad_id, campaign_id, advertiser_id) "
                             "VALUES (:ad, :ad, :owner)"),
                     [{"ad": ad, "owner": owner} for ad, owner in OWNERS.items()])
        for grain in ("hour", "day"):
            conn.execute(sa.text(
                f"INSERT INTO agg.ad_clicks_per_{grain} SELECT date_trunc('{grain}', minute, "
                "'UTC'), ad_id, sum(clicks) FROM agg.ad_clicks_per_minute GROUP BY 1, 2"))
            conn.execute(sa.text(
                f"INSERT INTO agg.{grain}_totals SELECT date_trunc('{grain}', minute, 'UTC'), "
                "sum(clicks) FROM agg.minute_totals GROUP BY 1"))
    return stack


def serve(stack: Stack, **changes: Any) -> Iterator[TestClient]:
    app = create_app(replace(stack.settings, **changes))
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


@pytest.fixture
def keyed(platform: Stack) -> Iterator[TestClient]:
    """The API as deployed: keys required, /metrics on."""
    yield from serve(platform, api_open=False, api_metrics=True)


@pytest.fixture
def open_api(platform: Stack) -> Iterator[TestClient]:
    yield from serve(platform, api_open=True, api_metrics=True)


def top_ads(client: TestClient, key: str | None = None) -> list[tuple[str, int]]:
    response = client.get("/v1/ads/top", params={"minutes": 3, "n": 100, "trend": 3},
                          headers=bearer(key) if key else {})
    assert response.status_code == 200, response.text
    return [(ad["ad_id"], ad["clicks"]) for ad in response.json()["ads"]]


def test_an_advertisers_key_ranks_only_its_own_ads(platform: Stack, keyed: TestClient) -> None:
    acme = make_key(platform, "acme")
    body = keyed.get("/v1/ads/top", params={"minutes": 3, "trend": 3},
                     headers=bearer(acme)).json()

    assert [(ad["rank"], ad["ad_id"], ad["clicks"]) for ad in body["ads"]] == [
        (1, "b", 9), (2, "a", 8), (3, "x/y", 2)]
    assert body["ads"][0]["trend"] == [5, 0, 4]
    assert top_ads(keyed, make_key(platform, "globex")) == [("z", 9), ("10", 8), ("B", 5)]
    assert top_ads(keyed, make_key(platform, ADVERTISER_OF_NOBODY)) == []


@pytest.mark.parametrize("granularity", ["minute", "hour", "day"])
def test_another_advertisers_ad_is_a_404_exactly_like_an_ad_nobody_has(
        platform: Stack, keyed: TestClient, granularity: str) -> None:
    acme = bearer(make_key(platform, "acme"))
    params = {"granularity": granularity, "from": iso(BASE)}

    def get(ad: str) -> tuple[int, Any]:
        response = keyed.get(f"/v1/ads/{ad}/clicks", params=params, headers=acme)
        return response.status_code, response.json()

    own_status, own = get("a")
    foreign = [get(ad) for ad in ("z", "10", "B")]
    nobodys = get("never-seen")
    uncatalogued = get("ad-9")  # it has clicks, but no catalog row names its advertiser

    assert own_status == 200 and own["total"] == 8
    for status, body in [*foreign, nobodys, uncatalogued]:
        assert status == 404
        assert set(body) == {"detail"}
    # The body names the ad asked for and nothing else: swap the id and they are equal.
    assert {body["detail"].replace(repr(ad), "AD") for ad, (_, body) in zip(
        ("z", "10", "B", "never-seen", "ad-9"), [*foreign, nobodys, uncatalogued],
        strict=True)} == {"no ad AD among this key's ads"}


def test_an_advertisers_minutes_are_the_sums_of_its_own_ads_never_the_platforms(
        platform: Stack, keyed: TestClient) -> None:
    for advertiser in ("acme", "globex", ADVERTISER_OF_NOBODY):
        key = bearer(make_key(platform, advertiser))
        listed = keyed.get("/v1/minutes", params={"from": iso(BASE), "to": iso(BASE + 120)},
                           headers=key).json()["minutes"]
        one = keyed.get(f"/v1/minutes/{iso(BASE + 60)}", headers=key).json()

        assert [(m["minute"], m["clicks"], m["distinct_ads"]) for m in listed] == [
            (iso(minute), *own_clicks(advertiser, minute)) for minute in MINUTES], advertiser
        assert (one["clicks"], one["distinct_ads"]) == own_clicks(advertiser, BASE + 60)
        assert [m["revision"] for m in listed] == [1, 1, 1]


def test_pipeline_status_and_metrics_are_for_admin_keys_only(
        platform: Stack, keyed: TestClient) -> None:
    acme = bearer(make_key(platform, "acme"))
    admin = bearer(make_key(platform, None))

    refused = [keyed.get(path, headers=acme) for path in ("/v1/status", "/metrics")]

    assert [r.status_code for r in refused] == [403, 403]
    assert all("admin" in r.json()["detail"] for r in refused)
    assert "queues" in keyed.get("/v1/status", headers=admin).json()
    assert "farloom_api_requests_total" in keyed.get("/metrics", headers=admin).text


def test_an_admin_key_sees_what_the_open_mode_sees(
        platform: Stack, keyed: TestClient, open_api: TestClient) -> None:
    admin_key = make_key(platform, None)
    admin = bearer(admin_key)
    requests: list[tuple[str, dict[str, Any]]] = [
        ("/v1/ads/top", {"minutes": 3, "trend": 2}),
        ("/v1/ads/z/clicks", {"from": iso(BASE)}),
        ("/v1/ads/ad-9/clicks", {"from": iso(BASE), "granularity": "hour"}),
        ("/v1/minutes", {"from": iso(BASE)}),
        (f"/v1/minutes/{iso(BASE)}", {}),
    ]
    for path, params in requests:
        as_admin = keyed.get(path, params=params, headers=admin)
        as_open = open_api.get(path, params=params)
        assert as_admin.status_code == as_open.status_code == 200, path
        assert as_admin.json() == as_open.json(), path
    assert len(top_ads(keyed, admin_key)) == 8  # every ad, catalogued or not
    assert keyed.get(f"/v1/minutes/{iso(BASE)}", headers=admin).json()["clicks"] == 23


def test_the_open_mode_serves_everything_without_a_key(open_api: TestClient) -> None:
    assert len(top_ads(open_api)) == 8
    assert open_api.get("/v1/status").status_code == 200
    assert open_api.get("/metrics").status_code == 200


def _bad_credentials(stack: Stack) -> dict[str, tuple[dict[str, str], dict[str, str], str]]:
    """name -> (headers, query parameters, words the 401's detail must hold)."""
    good = make_key(stack, "acme")
    parsed = keys.parse(good)
    assert parsed is not None
    revoked = make_key(stack, "acme")
    revoke(stack, revoked)
    wrong_secret = str(keys.ApiKey(parsed.key_id, keys.generate().secret))
    unknown_id = str(keys.ApiKey(keys.generate().key_id, parsed.secret))
    return {
        "no header": ({}, {}, "farloom api-key create"),
        "another scheme": ({"Authorization": f"Basic {good}"}, {}, "farloom api-key create"),
        "an empty bearer": ({"Authorization": "Bearer "}, {}, "farloom api-key create"),
        "not a key": ({"Authorization": "Bearer hunter2"}, {}, "flk_<id>_<secret>"),
        "a truncated key": (bearer(good[:-1]), {}, "flk_<id>_<secret>"),
        "a wrong secret": (bearer(wrong_secret), {}, "not known"),
        "an unknown id": (bearer(unknown_id), {}, "not known"),
        "a revoked key": (bearer(revoked), {}, "revoked"),
        "a key in the query string": ({}, {"api_key": good, "access_token": good,
                                           "key": good}, "not a query parameter"),
    }


PROTECTED = ["/v1/ads/top", "/v1/ads/a/clicks", f"/v1/minutes/{iso(BASE)}", "/v1/minutes",
             "/v1/status", "/metrics"]


def test_every_protected_endpoint_refuses_a_missing_malformed_unknown_or_revoked_key(
        platform: Stack, keyed: TestClient) -> None:
    for name, (headers, params, words) in _bad_credentials(platform).items():
        for path in PROTECTED:
            response = keyed.get(path, headers=headers, params=params)
            assert response.status_code == 401, (name, path)
            assert response.headers["WWW-Authenticate"].startswith("Bearer"), (name, path)
            assert words in response.json()["detail"], (name, path)


def test_every_v1_route_the_document_lists_asks_for_a_key(keyed: TestClient) -> None:
    """A route added later without `caller: Authenticated` would answer here."""
    spec = keyed.get("/openapi.json").json()
    routes = [path for path in spec["paths"] if path.startswith("/v1/")]
    for path in routes:
        url = (path.replace("{ad_id}", "a").replace("{minute}", iso(BASE))
               .replace("{campaign_id}", "a").replace("{advertiser_id}", "acme"))
        assert keyed.get(url).status_code == 401, path
        assert spec["paths"][path]["get"].get("security"), path
    assert len(routes) >= len(PROTECTED) - 1  # every /v1 route of today, at least


def test_a_key_revoked_while_in_use_fails_from_its_next_request(
        platform: Stack, keyed: TestClient) -> None:
    key = make_key(platform, "acme")
    before = keyed.get("/v1/minutes", headers=bearer(key))
    revoke(platform, key)
    after = keyed.get("/v1/minutes", headers=bearer(key))

    assert before.status_code == 200
    assert after.status_code == 401 and "revoked" in after.json()["detail"]


def test_health_the_dashboard_and_the_docs_need_no_key_and_metrics_are_off_by_default(
        platform: Stack, keyed: TestClient) -> None:
    default = create_app(replace(platform.settings, api_open=False))
    try:
        with TestClient(default) as client:
            metrics = client.get("/metrics", headers=bearer(make_key(platform, None)))
    finally:
        default.state.engine.dispose()

    for path in ("/healthz", "/", "/static/app.js", "/docs", "/openapi.json"):
        assert keyed.get(path).status_code == 200, path
    assert metrics.status_code == 404
    schemes = keyed.get("/openapi.json").json()["components"]["securitySchemes"]
    assert [scheme["scheme"] for scheme in schemes.values()] == ["bearer"]


def test_an_api_whose_database_has_no_key_table_says_to_migrate_with_a_503(
        stack: Stack) -> None:
    # The server's maintenance database, which Farloom never migrates; read-only role.
    unmigrated = agg_reads.read_only_url(
        stack.settings.database_url.rsplit("/", 1)[0] + "/postgres", "")
    app = create_app(replace(stack.settings, api_open=False, api_database_url=unmigrated))
    try:
        with TestClient(app) as client:
            response = client.get("/v1/minutes", headers=bearer(str(keys.generate())))
    finally:
        app.state.engine.dispose()

    assert response.status_code == 503
    assert "farloom migrate" in response.json()["detail"]


def test_secrets_are_compared_through_hmac_compare_digest(
        platform: Stack, keyed: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails if the comparison stops going through the constant-time one (say, `==`)."""
    key = make_key(platform, "acme")
    parsed = keys.parse(key)
    assert parsed is not None
    calls: list[tuple[bytes, bytes, bool]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        result = real(a, b)
        calls.append((a, b, result))
        return result

    monkeypatch.setattr(keys.hmac, "compare_digest", spy)
    good = keyed.get("/v1/minutes", headers=bearer(key))
    wrong = keyed.get("/v1/minutes", headers=bearer(
        str(keys.ApiKey(parsed.key_id, keys.generate().secret))))

    assert (good.status_code, wrong.status_code) == (200, 401)
    stored = keys.digest(parsed.secret)
    assert [(b, result) for _, b, result in calls] == [(stored, True), (stored, False)]
    assert all(len(a) == len(b) == 32 for a, b, _ in calls)  # digests, never the secret
