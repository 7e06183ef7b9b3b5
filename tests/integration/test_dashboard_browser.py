"""The dashboard in a real browser (Debian's chromium via Playwright) against real data."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from farloom_tasks import processes
from farloom_tasks.core.clicks import Rejection
from farloom_tasks.core.messages import DeadLetter
from farloom_tasks.core.windows import minute_of, to_datetime
from farloom_tasks.stores import rejected_clicks
from farloom_tasks.stores.transactions import transaction
from tests.support.ports import free_port
from tests.support.stack import PROJECT_ROOT, Stack

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = PROJECT_ROOT / "var" / "screenshots"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (scripts/ensure-browser installs it)")


@contextlib.contextmanager
def serving(stack: Stack, **env: str) -> Iterator[str]:
    port = free_port()
    (PROJECT_ROOT / "var").mkdir(exist_ok=True)
    with open(PROJECT_ROOT / "var" / "test-dashboard-serve.log", "w") as handle:
        server = stack.spawn("serve", "--port", str(port), log=handle,
                             env=dict(stack.env, **env))
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                        break
                assert server.poll() is None, "farloom serve exited: var/test-dashboard-serve.log"
                assert time.monotonic() < deadline, "farloom serve did not answer within 30 s"
                time.sleep(0.2)
            yield url
        finally:
            processes.stop(server, grace=10)


@pytest.fixture
def served(stack: Stack) -> Iterator[str]:
    """As deployed: every /v1 request needs a key."""
    with serving(stack, FARLOOM_API_OPEN="0") as url:
        yield url


def api_key(stack: Stack, *args: str) -> str:
    done = stack.farloom("api-key", "create", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1]


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])


def fill_last_hour(stack: Stack) -> int:
    """Sixty closed minutes of 150 ads each, skewed so the ranking is interesting."""
    last = minute_of(time.time()) - 60
    totals: list[dict[str, object]] = []
    per_ad: list[dict[str, object]] = []
    closes: list[dict[str, object]] = []
    for i in range(60):
        minute = last - (59 - i) * 60
        counts = {f"ad-{a:03d}": 1 + (a * 7919 + i * 31) % 50 + (200 if a == 5 else 0)
                  for a in range(150)}
        at = to_datetime(minute)
        totals.append({"m": at, "c": sum(counts.values()), "d": len(counts)})
        per_ad.extend({"m": at, "a": ad, "c": n} for ad, n in counts.items())
        closes.append({"m": at})
    with stack.engine().begin() as conn:
        for day in sorted({minute // 86_400 * 86_400 for minute in (last - 59 * 60, last)}):
            conn.execute(sa.text("SELECT raw.ensure_partition('agg.ad_clicks_per_minute', :m, "
                                 "interval '1 day', NULL, 'fillfactor = 50')"),
                         {"m": to_datetime(day)})
        conn.execute(sa.text("INSERT INTO agg.minute_totals VALUES (:m, :c, :d, 1, now())"),
                     totals)
        conn.execute(sa.text("INSERT INTO agg.ad_clicks_per_minute VALUES (:m, :a, :c, 1)"),
                     per_ad)
        conn.execute(sa.text("INSERT INTO agg.minute_closes (minute, started_revision, "
                             "published_revision) VALUES (:m, 1, 1)"), closes)
        for grain in ("hour", "day"):  # the rollups, as the aggregated writer keeps them
            conn.execute(sa.text(
                f"INSERT INTO agg.ad_clicks_per_{grain} SELECT date_trunc('{grain}', minute, "
                "'UTC'), ad_id, sum(clicks) FROM agg.ad_clicks_per_minute GROUP BY 1, 2"))
            conn.execute(sa.text(
                f"INSERT INTO agg.{grain}_totals SELECT date_trunc('{grain}', minute, 'UTC'), "
                "sum(clicks) FROM agg.minute_totals GROUP BY 1"))
    return last


def test_the_dashboard_asks_for_a_key_shows_the_databases_numbers_and_drills_into_an_ad(
        stack: Stack, served: str) -> None:
    from playwright.sync_api import sync_playwright

    last = fill_last_hour(stack)
    engine = stack.engine()
    try:  # rejected clicks of the last hour, as ingest records them, and one older
        with transaction(engine) as cursor:
            for n, (code, age) in enumerate([("missing_field", 30), ("missing_field", 600),
                                             ("future_timestamp", 90), ("bad_value", 7200)]):
                rejected_clicks.record(cursor, [DeadLetter(b"{}", Rejection(code, "why"), 0,
                                                           f"amqp:m{n}")], time.time() - age)
    finally:
        engine.dispose()
    with stack.engine().connect() as conn:
        expected_rejected = sorted((str(code), int(n)) for code, n in conn.execute(sa.text(
            "SELECT reason_code, count(*) FROM raw.rejected_clicks "
            "WHERE rejected_at >= now() - interval '60 minutes' GROUP BY 1")))
        last_total = conn.execute(sa.text(
            "SELECT clicks FROM agg.minute_totals WHERE minute = :m"),
            {"m": to_datetime(last)}).scalar_one()
        expected_top = [(row.ad_id, int(row.clicks)) for row in conn.execute(sa.text(
            "SELECT ad_id, clicks FROM agg.ad_clicks_per_minute WHERE minute = :m "
            "ORDER BY clicks DESC, ad_id COLLATE \"C\" LIMIT 5"), {"m": to_datetime(last)})]
        hour_of_ad_7 = conn.execute(sa.text(
            "SELECT sum(clicks) FROM agg.ad_clicks_per_minute WHERE ad_id = 'ad-007'")).scalar()
        # Every filled minute is in the last 24 hours.
        expected_day_top = [(row.ad_id, int(row.clicks)) for row in conn.execute(sa.text(
            "SELECT ad_id, sum(clicks) AS clicks FROM agg.ad_clicks_per_minute GROUP BY ad_id "
            "ORDER BY clicks DESC, ad_id COLLATE \"C\" LIMIT 5"))]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    admin = api_key(stack, "--admin")

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1400})
            page.goto(served + "/", timeout=15_000)
            page.wait_for_selector("#key-form:not([hidden])", timeout=15_000)
            asked = page.text_content("#key-message")
            page.fill("#api-key", admin)
            page.click("#key-form button")
            page.wait_for_selector("#top-table tbody tr", timeout=15_000)
            page.wait_for_function(
                "document.querySelector('#last-minute-total').dataset.clicks !== undefined",
                timeout=15_000)
            rows = page.eval_on_selector_all(
                "#top-table tbody tr",
                "rows => rows.slice(0, 5)"
                ".map(r => [r.dataset.adId, Number(r.cells[2].dataset.clicks)])")
            shown_total = page.get_attribute("#last-minute-total", "data-clicks")
            sparklines = page.locator("#top-table tbody tr svg.spark polyline").count()
            page.wait_for_function(
                "document.querySelector('#health-badge').textContent !== '…'", timeout=15_000)
            badge = page.text_content("#health-badge")
            page.wait_for_selector("#rejected tbody tr", timeout=15_000)
            rejected_rows = page.eval_on_selector_all(
                "#rejected tbody tr", "rows => rows.map(r => [r.dataset.reason, "
                "Number(r.cells[1].textContent.replace(/[^0-9]/g, ''))])")
            rejected_total = page.text_content("#rejected-total")

            page.fill("#search-ad", "ad-007")
            page.click("#search button")
            page.wait_for_selector("#ad-detail:not([hidden])", timeout=15_000)
            ad_total = page.get_attribute("#ad-detail-total", "data-clicks")
            page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)

            page.select_option("#top-range", "1440")
            page.wait_for_function(
                "document.querySelector('#top-table').dataset.minutes === '1440'",
                timeout=15_000)
            day_rows = page.eval_on_selector_all(
                "#top-table tbody tr",
                "rows => rows.slice(0, 5)"
                ".map(r => [r.dataset.adId, Number(r.cells[2].dataset.clicks)])")
            page.select_option("#ad-range", "week")
            page.wait_for_function(
                "document.querySelector('#ad-detail-total').dataset.granularity === 'day'",
                timeout=15_000)
            week_total = page.get_attribute("#ad-detail-total", "data-clicks")
            week_caption = page.text_content("#ad-detail-range")
            kept = page.evaluate("sessionStorage.getItem('farloom.apiKey')")

            # Revoked: the next refresh gets a 401 and the dashboard asks again.
            revoked = stack.farloom("api-key", "revoke", admin.split("_")[1])
            page.wait_for_selector("#key-form:not([hidden])", timeout=15_000)
            asked_again = page.text_content("#key-message")
            forgotten = page.evaluate("sessionStorage.getItem('farloom.apiKey')")
        finally:
            browser.close()

    assert [tuple(row) for row in rows] == expected_top
    assert expected_top[0][0] == "ad-005"
    assert int(shown_total or -1) == last_total
    assert sparklines == 100
    assert badge == "healthy"
    assert sorted(tuple(row) for row in rejected_rows) == expected_rejected == [
        ("future_timestamp", 1), ("missing_field", 2)]
    assert rejected_total == "3"
    assert int(ad_total or -1) == hour_of_ad_7
    assert [tuple(row) for row in day_rows] == expected_day_top
    assert expected_day_top != expected_top  # the window changed the ranking
    assert int(week_total or -1) == hour_of_ad_7
    assert week_caption is not None and "7 days" in week_caption
    assert (SCREENSHOTS / "dashboard.png").stat().st_size > 10_000
    assert asked is not None and "farloom api-key create" in asked
    assert kept == admin
    assert revoked.returncode == 0
    assert asked_again is not None and "revoked" in asked_again
    assert forgotten is None


def test_an_advertisers_key_shows_its_own_ads_and_the_open_mode_asks_for_none(
        stack: Stack) -> None:
    from playwright.sync_api import sync_playwright

    fill_last_hour(stack)
    with stack.engine().begin() as conn:  # acme's ads: every fifth
        conn.execute(sa.text("INSERT INTO agg.ads (ad_id, advertiser_id) "
                             "SELECT DISTINCT ad_id, 'acme' FROM agg.ad_clicks_per_minute "
                             "WHERE right(ad_id, 1) IN ('0', '5')"))
    acme = api_key(stack, "--advertiser", "acme")

    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            with serving(stack, FARLOOM_API_OPEN="0") as url:
                page = browser.new_page()
                page.on("request", lambda request: requests.append(request.url))
                # A link shared by an admin, filtered to another advertiser: the key
                # fixes the advertiser, so the filter is hidden and never sent.
                page.goto(url + "/#advertiser_id=globex", timeout=15_000)
                page.wait_for_selector("#key-form:not([hidden])", timeout=15_000)
                page.fill("#api-key", acme)
                page.click("#key-form button")
                page.wait_for_selector("#top-table tbody tr", timeout=15_000)
                page.wait_for_function(
                    "document.querySelector('#health').dataset.adminOnly === 'true'",
                    timeout=15_000)
                acme_ads = page.eval_on_selector_all(
                    "#top-table tbody tr", "rows => rows.map(r => r.dataset.adId)")
                badge = page.text_content("#health-badge")
                advertiser_hidden = page.is_hidden("#filter-advertiser-label")
                summary = page.text_content("#filter-summary")
            with serving(stack, FARLOOM_API_OPEN="1") as url:
                page = browser.new_page()
                page.goto(url + "/", timeout=15_000)
                page.wait_for_function(
                    "document.querySelectorAll('#top-table tbody tr').length === 100",
                    timeout=15_000)
                page.wait_for_function(
                    "document.querySelector('#health-badge').textContent !== '…'",
                    timeout=15_000)
                open_form_hidden = page.is_hidden("#key-form")
                open_badge = page.text_content("#health-badge")
        finally:
            browser.close()

    assert len(acme_ads) == 30 and all(ad[-1] in "05" for ad in acme_ads)
    assert badge == "admin key needed"
    acme_tops = sent(requests, "/ads/top")
    assert acme_tops and all("advertiser_id" not in query for query in acme_tops)
    assert advertiser_hidden and summary == "Showing your key's ads."
    assert open_form_hidden and open_badge == "healthy"


def put_country_slice(stack: Stack, minute: int, counts: dict[str, dict[str, int]]) -> None:
    """One minute of the `country` slice, as the close writes it (migration 0012)."""
    at = to_datetime(minute)
    with stack.engine().begin() as conn:
        conn.execute(sa.text("SELECT raw.ensure_partition('agg.slice_values', :m, "
                             "interval '1 day', NULL, NULL)"), {"m": at})
        conn.execute(sa.text("INSERT INTO agg.slice_minutes (minute, slice, revision, clicks) "
                             "VALUES (:m, 'country', 1, :c)"),
                     {"m": at, "c": sum(sum(ads.values()) for ads in counts.values())})
        for value, ads in counts.items():
            ranked = sorted(ads.items(), key=lambda item: (-item[1], item[0]))
            conn.execute(sa.text(
                "INSERT INTO agg.slice_values VALUES (:m, 'country', :v, 1, :c, :d, :ids, :n)"),
                {"m": at, "v": value, "c": sum(ads.values()), "d": len(ads),
                 "ids": [ad for ad, _ in ranked], "n": [n for _, n in ranked]})


def sent(urls: list[str], path: str) -> list[dict[str, str]]:
    """The query parameters of each request the page made to a path."""
    found = []
    for url in urls:
        parts = httpx.URL(url)
        if parts.path.startswith("/v1/") and parts.path.endswith(path):
            found.append(dict(parts.params))
    return found


def test_the_filter_bar_sends_its_filters_keeps_them_in_the_hash_and_shows_a_refusal(
        stack: Stack) -> None:
    from playwright.sync_api import sync_playwright

    last = fill_last_hour(stack)
    us = {"ad-003": 7, "ad-010": 7, "ad-100": 2}
    put_country_slice(stack, last, {"US": us, "DE": {"ad-005": 40}})

    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:  # only `country` configured: device has no slice, so the API refuses it
            with serving(stack, FARLOOM_API_OPEN="1", FARLOOM_DIMENSIONS="country") as url:
                page = browser.new_page()
                page.on("request", lambda request: requests.append(request.url))
                done = ("(t => t.dataset.filters !== undefined || t.dataset.error !== undefined)"
                        "(document.querySelector('#top-table'))")
                # A shared link: the hash's filters, normalised as the contract stores them.
                page.goto(url + "/#country=us&device=Mobile", timeout=15_000)
                page.wait_for_function(done, timeout=15_000)
                shared = (page.input_value("#filter-country"), page.input_value("#filter-device"),
                          page.evaluate("location.hash"))
                first_top = sent(requests, "/ads/top")[0]
                first_error = page.get_attribute("#top-table", "data-error")
                first_message = page.text_content("#top-error")

                # Not a country code: refused before anything is sent, the hash kept.
                before = len(requests)
                page.fill("#filter-country", "USA")
                page.click("#filters button[type=submit]")
                bad_input = (page.is_visible("#filter-error"), page.text_content("#filter-error"),
                             page.evaluate("location.hash"), len(requests) - before)

                page.fill("#filter-country", "DE")
                page.select_option("#filter-device", "")
                page.fill("#filter-advertiser", "acme")
                page.click("#filters button[type=submit]")
                page.wait_for_function(  # answered, with rows or a refusal
                    "document.querySelector('#top-table').dataset.filters"
                    " === '&country=DE&advertiser_id=acme'", timeout=15_000)
                applied_hash = page.evaluate("location.hash")
                applied_top = sent(requests, "/ads/top")[-1]
                error_hidden = page.is_hidden("#filter-error")
                page.fill("#search-ad", "ad-007")
                page.click("#search button")
                page.wait_for_function(
                    "!document.querySelector('#ad-detail').hidden"
                    " || !document.querySelector('#search-error').hidden", timeout=15_000)
                ad_clicks = sent(requests, "/ad-007/clicks")
                ad_refusal = page.text_content("#search-error")

                # Any 400 is a sentence above an emptied table, not a broken page: a
                # window the API refuses (longer than 90 days) is one without F's filters.
                page.click("#filter-clear")
                page.evaluate("""() => {
                  const range = document.querySelector('#top-range');
                  range.add(new Option('too long', '200000'));
                }""")
                page.select_option("#top-range", "200000")
                page.wait_for_function(
                    "document.querySelector('#top-table').dataset.error === 'malformed'",
                    timeout=15_000)
                refusal = (page.text_content("#top-error"),
                           page.locator("#top-table tbody tr").count(),
                           page.evaluate("location.hash"))
                page.select_option("#top-range", "1")
                page.wait_for_function(
                    "document.querySelector('#top-table').dataset.error === undefined"
                    " && document.querySelectorAll('#top-table tbody tr').length === 100",
                    timeout=15_000)
                recovered_hidden = page.is_hidden("#top-error")

                # A link pasted into the tab: the table is the slice's answer.
                page.evaluate("location.hash = '#country=US'")
                page.wait_for_function(
                    "document.querySelector('#top-table').dataset.filters === '&country=US'",
                    timeout=15_000)
                filtered = page.eval_on_selector_all(
                    "#top-table tbody tr",
                    "rows => rows.map(r => [r.dataset.adId, Number(r.cells[2].dataset.clicks)])")
                pasted = page.input_value("#filter-country")
        finally:
            browser.close()

    assert shared == ("US", "mobile", "#country=US&device=mobile")
    assert {"country": "US", "device": "mobile"}.items() <= first_top.items()
    # Only `country` is configured, so country with device is no configured slice.
    assert first_error == "unconfigured_combination"
    assert first_message is not None and "refused" in first_message
    assert "country" in first_message and "unconfigured_combination" in first_message
    assert bad_input[0] and "two-letter" in (bad_input[1] or "")
    assert bad_input[2] == "#country=US&device=mobile" and bad_input[3] == 0
    assert applied_hash == "#country=DE&advertiser_id=acme" and error_hidden
    assert "device" not in applied_top
    assert {"country": "DE", "advertiser_id": "acme"}.items() <= applied_top.items()
    assert ad_clicks and {"country": "DE", "advertiser_id": "acme"}.items() <= ad_clicks[-1].items()
    # An advertiser filter combines with nothing: the ad's chart says so in words.
    assert ad_refusal is not None and "unconfigured_combination" in ad_refusal
    assert refusal[0] is not None and "refused" in refusal[0] and "malformed" in refusal[0]
    assert refusal[1:] == (0, "")
    assert recovered_hidden
    assert [tuple(row) for row in filtered] == [("ad-003", 7), ("ad-010", 7), ("ad-100", 2)]
    assert pasted == "US"
