"""The query API against its own OpenAPI document, as a new user would try it.

schemathesis (`st run .../openapi.json --checks all`, with the repository's
schemathesis.toml and its hook check) runs against `farloom serve` on a real
database with closed minutes: no 5xx, no status or content type the document does
not list, no schema-valid request refused except by a rule across parameters, no
request outside the schema accepted, and with keys, no route answering without one
(docs/design.md §2.10).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from farloom_tasks.api.app import create_app
from farloom_tasks.core.windows import iso, minute_of
from tests.integration.test_api import MINUTES, put_minute
from tests.integration.test_api_custom_dimensions import DIMENSIONS, write_custom_slices
from tests.integration.test_api_slices import put_slices
from tests.support.ports import free_port
from tests.support.stack import PROJECT_ROOT, Stack
from tests.support.waiting import wait_for

ST = Path(sys.executable).with_name("st")
CONFIG = PROJECT_ROOT / "schemathesis.toml"  # it names the hook check too
# The minute core.query_times.TIME_EXAMPLES name: closed here, so that the examples the
# document gives reach a result rather than a 404.
EXAMPLE_MINUTE = minute_of(datetime(2026, 11, 29, 14, 3, tzinfo=UTC).timestamp())
V1 = ("/v1/ads/top", "/v1/ads/{ad_id}/clicks", "/v1/minutes", "/v1/minutes/{minute}",
      "/v1/status", "/v1/campaigns/{campaign_id}/clicks",
      "/v1/advertisers/{advertiser_id}/clicks", "/v1/advertisers/{advertiser_id}/ads/top")


@pytest.fixture
def closed_minutes(stack: Stack) -> Stack:
    for minute, counts in {**MINUTES, EXAMPLE_MINUTE: {"a": 3, "10": 1}}.items():
        put_minute(stack, minute, counts)
    # Slices of the default FARLOOM_DIMENSIONS, so that filters and the per-campaign and
    # per-advertiser routes reach answers with rows too (test_api_slices checks them).
    put_slices(stack, ("country", "device", "campaign", "advertiser"))
    return stack


@contextmanager
def serving(stack: Stack, *, open_mode: bool, dimensions: str | None = None) -> Iterator[str]:
    """`farloom serve` on a free port (with ``dimensions`` as FARLOOM_DIMENSIONS if
    given); its base URL."""
    port = free_port()
    env = {**stack.env, "FARLOOM_API_OPEN": "1" if open_mode else "0",
           **({"FARLOOM_DIMENSIONS": dimensions} if dimensions is not None else {})}
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "farloom_tasks.cli", "serve", "--port", str(port)],
            env=env, cwd=PROJECT_ROOT, text=True, stdout=log, stderr=subprocess.STDOUT)

        def server_log() -> str:
            log.seek(0)
            return log.read()

        base = f"http://127.0.0.1:{port}"
        try:
            wait_for("farloom serve to answer /healthz", lambda: _answers(base),
                     context=server_log)
            yield base
        finally:
            server.terminate()
            server.wait(timeout=30)


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def schemathesis(location: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ST), "--config-file", str(CONFIG), "run", location, "--checks", "all",
         "--no-color", *args],
        cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=300)


def report(run: subprocess.CompletedProcess[str]) -> str:
    """What schemathesis found (its FAILURES section on), for the assertion message."""
    found = run.stdout.find("FAILURES")
    return (run.stdout[found:] if found >= 0 else run.stdout)[-12_000:] + run.stderr[-2_000:]


def admin_key(stack: Stack) -> str:
    made = stack.farloom("api-key", "create", "--admin", "--label", "openapi contract")
    assert made.returncode == 0, made.stdout + made.stderr
    return made.stdout.strip().splitlines()[-1]


def test_with_an_admin_key_the_api_keeps_every_promise_its_openapi_document_makes(
        closed_minutes: Stack) -> None:
    key = admin_key(closed_minutes)
    with serving(closed_minutes, open_mode=False) as base:
        document = httpx.get(f"{base}/openapi.json").json()
        run = schemathesis(f"{base}/openapi.json", "-H", f"Authorization: Bearer {key}")

    schemes = document["components"]["securitySchemes"]
    assert [scheme["scheme"] for scheme in schemes.values()] == ["bearer"]
    for path in V1:
        assert document["paths"][path]["get"]["security"], path
        assert "401" in document["paths"][path]["get"]["responses"], path
    assert "security" not in document["paths"]["/healthz"]["get"]
    assert run.returncode == 0, report(run)
    assert "ST401" not in run.stdout  # ignored_auth ran and found every route asking


def test_in_the_open_mode_the_document_asks_for_no_key_and_the_api_keeps_its_promises(
        closed_minutes: Stack) -> None:
    with serving(closed_minutes, open_mode=True) as base:
        document = httpx.get(f"{base}/openapi.json").json()
        # The keyed test walks every phase; here the document's own examples and
        # every parameter's boundaries are enough to show no route asks for a key.
        run = schemathesis(f"{base}/openapi.json", "--phases", "examples,coverage")

    assert "securitySchemes" not in document.get("components", {})
    for path in V1:
        operation = document["paths"][path]["get"]
        assert "security" not in operation and "401" not in operation["responses"], path
    assert run.returncode == 0, report(run)


def test_with_custom_dimensions_the_filtered_routes_keep_the_documents_promises(
        stack: Stack) -> None:
    """The `dimension` filter's pattern names the configured custom dimensions: every
    item it admits is one the API takes (a 200, a 404, or a 400 for a rule across
    parameters: a combination not configured, a dimension given twice)."""
    write_custom_slices(stack)
    with serving(stack, open_mode=True, dimensions=DIMENSIONS) as base:
        document = httpx.get(f"{base}/openapi.json").json()
        run = schemathesis(f"{base}/openapi.json", "--include-path-regex", "^/v1/ads/")

    parameters = document["paths"]["/v1/ads/top"]["get"]["parameters"]
    assert "device_model|os" in next(p for p in parameters
                                     if p["name"] == "dimension")["schema"]["items"]["pattern"]
    assert run.returncode == 0, report(run)
    assert "2 selected" in run.stdout, run.stdout  # /v1/ads/top and /v1/ads/{ad_id}/clicks


def test_the_check_fails_on_a_document_typing_times_as_plain_strings_as_it_once_did(
        closed_minutes: Stack, tmp_path: Path) -> None:
    with serving(closed_minutes, open_mode=True) as base:
        honest = httpx.get(f"{base}/openapi.json").json()
        plain = tmp_path / "plain-strings.json"
        plain.write_text(json.dumps(without_patterns(honest)))
        run = schemathesis(str(plain), "--url", base, "--include-path", "/v1/minutes",
                           "--phases", "fuzzing")

    assert run.returncode != 0
    assert "a_schema_valid_request_is_refused_only_by_a_rule_across_parameters" in run.stdout
    assert "is not a time" in run.stdout


def without_patterns(document: dict[str, Any]) -> dict[str, Any]:
    plain = copy.deepcopy(document)
    for path_item in plain["paths"].values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                parameter["schema"].pop("pattern", None)
    return plain


@pytest.fixture
def open_client(stack: Stack) -> Iterator[TestClient]:
    app = create_app(replace(stack.settings, api_open=True))
    with TestClient(app) as client:
        yield client
    app.state.engine.dispose()


@pytest.mark.parametrize(("path", "params", "reason"), [
    ("/v1/ads/top", {"at": "2026-02-29 00:00"}, "malformed"),
    ("/v1/ads/top", {"n": 0}, "malformed"),
    ("/v1/ads/%00/clicks", {}, "malformed"),
    ("/v1/minutes/9999-12-31T23:59:00-01:00", {}, "malformed"),
    ("/v1/minutes", {"from": "9" * 400}, "malformed"),
    ("/v1/minutes", {"from": "2026-11-29 14:05", "to": "2026-11-29 14:00"}, "reversed_window"),
    ("/v1/ads/top", {"from": "2026-08-01", "to": "2026-11-29"}, "window_too_long"),
    ("/v1/ads/top", {"minutes": 5, "from": "2026-11-29 14:00"}, "conflicting_parameters"),
    ("/v1/ads/top", {"country": "US", "device": "tv"}, "unconfigured_combination"),
    ("/v1/ads/top", {"country": "US", "from": "2026-08-01", "to": "2026-11-29"},
     "window_too_long"),
    ("/v1/campaigns/c1/clicks", {"granularity": "hour", "from": "2026-08-01",
                                "to": "2026-11-29"}, "window_too_long"),
    ("/v1/advertisers/acme/ads/top", {"minutes": 5, "from": "2026-11-29 14:00"},
     "conflicting_parameters"),
])
def test_a_400_names_its_reason_as_the_document_lists_them(
        closed_minutes: Stack, open_client: TestClient, path: str, params: dict[str, object],
        reason: str) -> None:
    response = open_client.get(path, params=params)
    listed = open_client.get("/openapi.json").json()["components"]["schemas"]

    assert response.status_code == 400, response.text
    assert response.json()["reason"] == reason
    assert reason in listed["BadRequestBody"]["properties"]["reason"]["enum"]


def test_an_empty_time_parameter_is_the_same_as_one_left_out(
        closed_minutes: Stack, open_client: TestClient) -> None:
    empty = open_client.get("/v1/ads/top", params={"minutes": 2, "at": "", "from": "", "to": ""})
    left_out = open_client.get("/v1/ads/top", params={"minutes": 2})

    assert empty.status_code == 200, empty.text
    assert empty.json() == left_out.json()
    assert empty.json()["to"] == iso(EXAMPLE_MINUTE)


@pytest.mark.parametrize("open_mode", [False, True])
def test_the_document_promises_no_422_and_no_null_parameter_that_the_api_never_takes(
        stack: Stack, open_mode: bool) -> None:
    app = create_app(replace(stack.settings, api_open=open_mode))
    try:
        document = app.openapi()
    finally:
        app.state.engine.dispose()

    text = json.dumps(document)
    assert '"422"' not in text and "ValidationError" not in text
    for path, item in document["paths"].items():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                assert '"null"' not in json.dumps(parameter["schema"]), (path, parameter)
    for path in V1:
        documented = document["paths"][path]["get"]["responses"]
        assert {"200", "503"} <= set(documented), path
        assert ("401" in documented) is not open_mode, path
