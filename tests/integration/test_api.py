"""The query API against a real database: answers are compared with the agg rows."""

from __future__ import annotations

import json
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from farloom_tasks.api.app import create_app
from farloom_tasks.core.clicks import Rejection
from farloom_tasks.core.messages import DeadLetter
from farloom_tasks.core.partitions import DAY, HOUR
from farloom_tasks.core.windows import iso, minute_of, to_datetime
from farloom_tasks.stores import agg_reads, rejected_clicks, topology
from farloom_tasks.stores.transactions import transaction
from tests.support.stack import PROJECT_ROOT, Stack

BASE = minute_of(datetime(2026, 11, 29, 14, 0, tzinfo=UTC).timestamp())


def put_minute(stack: Stack, minute: int, counts: Mapping[str, int], revision: int = 1,
               k: int = 100) -> None:
    """Write one minute's result the way the aggregated writer does (all three tables)."""
    at = to_datetime(minute)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    with stack.engine().begin() as conn:
        make_minute_partition(conn, minute)
        conn.execute(sa.text(
            "INSERT INTO agg.minute_totals VALUES (:m, :c, :d, :r, now())"),
            {"m": at, "c": sum(counts.values()), "d": len(counts), "r": revision})
        if counts:
            conn.execute(sa.text(
                "INSERT INTO agg.ad_clicks_per_minute VALUES (:m, :a, :c, :r)"),
                [{"m": at, "a": ad, "c": n, "r": revision} for ad, n in counts.items()])
            conn.execute(sa.text("INSERT INTO agg.top_ads VALUES (:m, :k, :a, :c, :r)"),
                         [{"m": at, "k": i, "a": ad, "c": n, "r": revision}
                          for i, (ad, n) in enumerate(ranked[:k], 1)])


def make_minute_partition(conn: sa.Connection, minute: int) -> None:
    conn.execute(sa.text("SELECT raw.ensure_partition('agg.ad_clicks_per_minute', :m, "
                         "interval '1 day', NULL, 'fillfactor = 50')"),
                 {"m": to_datetime(minute)})


@pytest.fixture
def client(stack: Stack) -> Iterator[TestClient]:
    """The API in the open mode, as an admin key sees it (keys: test_api_keys.py)."""
    app = create_app(replace(stack.settings, api_open=True, api_metrics=True))
    with TestClient(app) as test_client:
        yield test_client
    app.state.engine.dispose()


# Ties on purpose: "b" and "B" and "a" tie in minute 0; code-point order puts "B" first.
MINUTES: dict[int, dict[str, int]] = {
    BASE: {"a": 5, "b": 5, "B": 5, "ad-9": 1, "10": 7},
    BASE + 60: {"a": 2, "z": 9, "10": 1},
    BASE + 120: {"b": 4, "ü": 4, "a": 1, "x/y": 2},
}


def expected_top(minutes: list[int], n: int) -> list[list[object]]:
    sums: Counter[str] = Counter()
    for minute in minutes:
        sums.update(MINUTES[minute])
    ranked = sorted(sums.items(), key=lambda item: (-item[1], item[0]))[:n]
    return [[rank, ad, clicks] for rank, (ad, clicks) in enumerate(ranked, 1)]


def as_rows(body: dict[str, object]) -> list[list[object]]:
    ads = body["ads"]
    assert isinstance(ads, list)
    return [[ad["rank"], ad["ad_id"], ad["clicks"]] for ad in ads]


def test_the_top_ads_are_exact_window_sums_ranked_by_clicks_then_code_point_order(
        stack: Stack, client: TestClient) -> None:
    for minute, counts in MINUTES.items():
        put_minute(stack, minute, counts)

    whole = client.get("/v1/ads/top", params={"n": 100, "minutes": 3})
    last_minute_only = client.get("/v1/ads/top", params={"n": 2, "minutes": 1})
    earlier = client.get("/v1/ads/top",
                         params={"minutes": 2, "at": "2026-11-29 14:01", "n": 4})

    assert whole.status_code == 200
    assert whole.json()["to"] == iso(BASE + 120)  # default: the last closed minute
    assert as_rows(whole.json()) == expected_top(list(MINUTES), 100)
    assert as_rows(last_minute_only.json()) == expected_top([BASE + 120], 2)
    assert as_rows(earlier.json()) == expected_top([BASE, BASE + 60], 4)
    assert [row[1] for row in expected_top([BASE], 3)] == ["10", "B", "a"]


def test_the_top_ads_carry_each_ads_trend_over_the_last_minutes(
        stack: Stack, client: TestClient) -> None:
    for minute, counts in MINUTES.items():
        put_minute(stack, minute, counts)

    body = client.get("/v1/ads/top", params={"n": 3, "minutes": 3, "trend": 4}).json()

    trends = {ad["ad_id"]: ad["trend"] for ad in body["ads"]}
    assert trends["10"] == [0, 7, 1, 0]
    assert trends["z"] == [0, 0, 9, 0]


def test_an_ads_clicks_are_listed_per_closed_minute_with_zeros_and_a_total(
        stack: Stack, client: TestClient) -> None:
    for minute, counts in MINUTES.items():
        put_minute(stack, minute, counts)

    body = client.get("/v1/ads/10/clicks",
                      params={"from": iso(BASE), "to": "2026-11-29T14:05:00Z"}).json()
    unicode_ad = client.get("/v1/ads/%C3%BC/clicks", params={"from": iso(BASE)}).json()
    slashed_ad = client.get("/v1/ads/x%2Fy/clicks", params={"from": iso(BASE)}).json()

    assert body["minutes"] == [{"minute": iso(BASE), "clicks": 7},
                               {"minute": iso(BASE + 60), "clicks": 1},
                               {"minute": iso(BASE + 120), "clicks": 0}]
    assert body["total"] == 8
    assert (unicode_ad["ad_id"], unicode_ad["total"]) == ("ü", 4)
    assert (slashed_ad["ad_id"], slashed_ad["total"]) == ("x/y", 2)


def test_minutes_report_their_total_distinct_ads_and_revision(
        stack: Stack, client: TestClient) -> None:
    for minute, counts in MINUTES.items():
        put_minute(stack, minute, counts, revision=minute // 60 - BASE // 60 + 10)

    one = client.get(f"/v1/minutes/{iso(BASE + 60)}").json()
    listed = client.get("/v1/minutes", params={"from": "2026-11-29 13:59",
                                               "to": "2026-11-29 14:01"}).json()
    default_range = client.get("/v1/minutes").json()

    assert (one["clicks"], one["distinct_ads"], one["revision"]) == (12, 3, 11)
    assert [(m["minute"], m["clicks"], m["distinct_ads"]) for m in listed["minutes"]] == [
        (iso(BASE), 23, 5), (iso(BASE + 60), 12, 3)]
    assert default_range["to"] == iso(BASE + 120)
    assert len(default_range["minutes"]) == 3


def test_before_any_minute_is_closed_the_api_says_so_with_a_404(client: TestClient) -> None:
    for path in ("/v1/ads/top", "/v1/minutes", "/v1/ads/x/clicks",
                 f"/v1/minutes/{iso(BASE)}"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "closed" in response.json()["detail"]


@pytest.mark.parametrize(("path", "params", "words"), [
    ("/v1/ads/top", {"minutes": 0}, "minutes"),
    ("/v1/ads/top", {"minutes": 129_601}, "minutes"),
    ("/v1/ads/top", {"n": "many"}, "n: "),
    ("/v1/ads/top", {"at": "yesterday"}, "RFC 3339"),
    ("/v1/ads/x/clicks", {"from": "2026-11-29 14:05", "to": "2026-11-29 14:00"}, "after"),
    ("/v1/minutes", {"from": "2026-01-01 00:00", "to": "2026-12-01 00:00"}, "shorter"),
    ("/v1/minutes", {"from": "14:00"}, "YYYY-MM-DD HH:MM"),
    ("/v1/minutes/not-a-minute", {}, "RFC 3339"),
])
def test_a_bad_parameter_gets_a_400_that_says_what_to_send(
        client: TestClient, path: str, params: dict[str, object], words: str) -> None:
    response = client.get(path, params=params)

    assert response.status_code == 400
    assert words in response.json()["detail"]


def test_health_metrics_and_status_report_the_pipeline(
        stack: Stack, client: TestClient) -> None:
    closed = minute_of(time.time()) - 60
    put_minute(stack, closed, {"a": 3})
    with stack.engine().begin() as conn:
        conn.execute(sa.text("INSERT INTO agg.minute_closes (minute, started_revision, "
                             "published_revision) VALUES (:m, 1, 1)"),
                     {"m": to_datetime(closed)})
    connection = stack.amqp()
    try:
        channel = connection.channel()
        topology.declare(channel, topology.QueueType.of(stack.settings))
        channel.basic_publish("", topology.DEAD_QUEUE, b"garbage")
    finally:
        connection.close()

    engine = stack.engine()
    try:
        with transaction(engine) as cursor:  # two rejections of one message, as ingest writes
            rejected_clicks.record(cursor, [
                DeadLetter(b"{}", Rejection("missing_field", "click_id"), 0, "amqp:m"),
                DeadLetter(b"[]", Rejection("not_object", "a list"), 1, "amqp:m")],
                time.time() - 5)
    finally:
        engine.dispose()

    health = client.get("/healthz")
    status = client.get("/v1/status").json()
    metrics = client.get("/metrics").text

    assert health.json() == {"status": "ok", "database": "ok"}
    assert status["closed_minute"] == iso(closed)
    assert status["dead_letters"] == 1
    assert status["queues"][topology.INGEST_QUEUE] == 0
    assert status["redis_used_memory_bytes"] > 0
    assert status["healthy"] is True, status["problems"]
    # Read through the API's read-only role, which may read the view but not raw.
    assert status["rejected_clicks"]["per_reason"] == {"missing_field": 1, "not_object": 1}
    assert status["rejected_clicks"]["total"] == 2
    assert 'farloom_api_requests_total{route="/healthz",status="200"} 1.0' in metrics


def test_the_dashboard_and_the_openapi_docs_are_served(client: TestClient) -> None:
    page = client.get("/")
    script = client.get("/static/app.js")
    docs = client.get("/docs")
    spec = client.get("/openapi.json").json()

    assert page.status_code == 200 and '<canvas id="minute-chart"' in page.text
    assert '<table id="rejected">' in page.text
    assert script.status_code == 200 and "/v1/status" in script.text
    assert "s.rejected_clicks" in script.text
    assert "//" not in page.text.replace("http://www.w3.org", "")  # no CDN, no remote URL
    assert docs.status_code == 200
    assert {"/v1/ads/top", "/v1/ads/{ad_id}/clicks", "/v1/minutes", "/v1/minutes/{minute}",
            "/v1/status"} <= set(spec["paths"])


@pytest.mark.parametrize("statement", [
    "INSERT INTO agg.minute_totals VALUES ('2026-11-29T14:00Z', 1, 1, 1, now())",
    "UPDATE agg.minute_totals SET clicks = clicks + 1",
    "DELETE FROM agg.ad_clicks_per_minute",
    "CREATE TABLE agg.sneaky (x int)",
    "CREATE TABLE public.sneaky (x int)",
    "SELECT count(*) FROM raw.ad_clicks",
    "SELECT element FROM raw.rejected_clicks",  # the API reads when and why, not what
    "DELETE FROM agg.rejected_clicks",
])
def test_the_api_role_cannot_write_or_read_raw_even_in_a_read_write_transaction(
        stack: Stack, statement: str) -> None:
    engine = sa.create_engine(agg_reads.read_only_url(stack.settings.database_url, ""))
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_user")).scalar() == "farloom_api"
            # Override the role's read-only default: the grants alone must stop it.
            conn.exec_driver_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE")
            conn.commit()
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


@pytest.mark.parametrize(("time_from", "time_to", "grain"), [
    ("2026-11-29T13:00:00Z", "2026-11-29T15:00:00Z", "minute"),
    ("2026-11-27T15:00:00Z", "2026-11-29T15:00:00Z", "hour"),
    ("2026-10-30T15:00:00Z", "2026-11-29T15:00:00Z", "day"),
])
def test_every_grafana_panel_query_runs_under_the_read_only_role(
        stack: Stack, time_from: str, time_to: str, grain: str) -> None:
    put_minute(stack, BASE, MINUTES[BASE])
    with stack.engine().begin() as conn:  # the rollups of that minute, but doubled:
        for rollup in ("hour", "day"):    # a series of them cannot pass for the minutes'
            conn.execute(sa.text(
                f"INSERT INTO agg.ad_clicks_per_{rollup} SELECT date_trunc('{rollup}', minute, "
                "'UTC'), ad_id, 2 * clicks FROM agg.ad_clicks_per_minute"))
            conn.execute(sa.text(
                f"INSERT INTO agg.{rollup}_totals SELECT date_trunc('{rollup}', minute, 'UTC'), "
                "2 * clicks FROM agg.minute_totals"))
    scale = 1 if grain == "minute" else 2
    dashboard = json.loads((PROJECT_ROOT / "deploy/grafana/dashboards/farloom.json").read_text())
    queries_run = 0
    series: dict[str, list[tuple[object, ...]]] = {}
    engine = sa.create_engine(agg_reads.read_only_url(stack.settings.database_url, ""))
    try:
        with engine.connect() as conn:
            for panel in dashboard["panels"]:
                for target in panel.get("targets", []):
                    if "agg.slice_values" in target["rawSql"]:
                        continue  # with its variables: test_grafana_slices.py
                    # Grafana's macros, expanded as its PostgreSQL data source does.
                    sql = target["rawSql"]
                    for column in ("minute", "hour", "day"):
                        sql = sql.replace(f"$__timeFilter({column})",
                                          f"{column} BETWEEN '{time_from}' AND '{time_to}'")
                    sql = (sql.replace("$__timeFrom()", f"'{time_from}'")
                           .replace("$__timeTo()", f"'{time_to}'").replace("${ad}", "a"))
                    rows = conn.exec_driver_sql(sql).all()
                    assert rows, panel["title"]
                    series[panel["title"]] = [tuple(row) for row in rows]
                    queries_run += 1
    finally:
        engine.dispose()
    assert queries_run >= 5
    totals = next(rows for title, rows in series.items() if title.startswith("Clicks per"))
    one_ad = next(rows for title, rows in series.items() if title.startswith("Ad $ad"))
    assert [row[1] for row in totals] == [scale * sum(MINUTES[BASE].values())]
    assert [row[1] for row in one_ad] == [scale * MINUTES[BASE]["a"]]


def test_an_unreachable_database_is_a_503_with_a_sentence_not_a_traceback(
        stack: Stack) -> None:
    settings = replace(stack.settings, api_open=True,
                       api_database_url="postgresql+psycopg2://farloom_api@127.0.0.1:1/none")
    app = create_app(settings)
    try:
        with TestClient(app) as down:
            health = down.get("/healthz")
            minutes = down.get("/v1/minutes")
    finally:
        app.state.engine.dispose()

    assert (health.status_code, health.json()["database"]) == (503, "unreachable")
    assert minutes.status_code == 503
    assert minutes.json() == {"detail": "the database is unreachable; try again shortly"}


# Long windows: nine days of minutes, the last closed one at 14:37 of the ninth.
FIRST_DAY = int(datetime(2026, 11, 20, tzinfo=UTC).timestamp())
LAST_CLOSED = FIRST_DAY + 8 * DAY + 14 * HOUR + 37 * 60
# A minute after the last closed one whose revision is being written: its per-ad
# rows (and so their rollups) are there, its totals not yet.
WRITING = LAST_CLOSED + 60
LONG_ADS = ["a", "B", "b", "c", "ad/7", "ü", "10", "9"]


def long_history() -> dict[int, dict[str, int]]:
    """Clicks per minute per ad, skewed per day so that the rankings differ by window."""
    rng = random.Random(11)
    history: dict[int, dict[str, int]] = {}
    for minute in range(FIRST_DAY, WRITING + 60, 60):
        day = (minute - FIRST_DAY) // DAY
        history[minute] = {ad: rng.randint(1, 3 + (i * day) % 7)
                           for i, ad in enumerate(LONG_ADS) if rng.random() < 0.3}
    return history


def rolled_up(history: Mapping[int, Mapping[str, int]],
              grain: int) -> dict[int, Counter[str]]:
    """Hour or day rollups of every per-minute row, as the aggregated writer keeps them."""
    rollups: dict[int, Counter[str]] = defaultdict(Counter)
    for minute, counts in history.items():
        rollups[minute // grain * grain].update(counts)
    return rollups


def put_long_history(stack: Stack, history: Mapping[int, Mapping[str, int]]) -> None:
    with stack.engine().begin() as conn:
        for day in range(FIRST_DAY, WRITING + DAY, DAY):
            make_minute_partition(conn, day)
        conn.execute(sa.text("INSERT INTO agg.minute_totals VALUES (:m, :c, :d, 1, now())"),
                     [{"m": to_datetime(m), "c": sum(c.values()), "d": len(c)}
                      for m, c in history.items() if m <= LAST_CLOSED])
        conn.execute(sa.text("INSERT INTO agg.ad_clicks_per_minute VALUES (:m, :a, :c, 1)"),
                     [{"m": to_datetime(m), "a": ad, "c": n}
                      for m, c in history.items() for ad, n in c.items()])
        for grain, name in ((HOUR, "hour"), (DAY, "day")):
            rollups = rolled_up(history, grain)
            conn.execute(sa.text(f"INSERT INTO agg.ad_clicks_per_{name} VALUES (:t, :a, :c)"),
                         [{"t": to_datetime(t), "a": ad, "c": n}
                          for t, c in rollups.items() for ad, n in c.items()])
            conn.execute(sa.text(f"INSERT INTO agg.{name}_totals VALUES (:t, :c)"),
                         [{"t": to_datetime(t), "c": sum(c.values())}
                          for t, c in rollups.items() if sum(c.values())])


def ranked_sums(history: Mapping[int, Mapping[str, int]], first: int, last: int,
                n: int = 100) -> list[list[object]]:
    sums: Counter[str] = Counter()
    for minute in range(first, last + 60, 60):
        sums.update(history.get(minute, {}))
    ranked = sorted(sums.items(), key=lambda item: (-item[1], item[0]))[:n]
    return [[rank, ad, clicks] for rank, (ad, clicks) in enumerate(ranked, 1)]


@pytest.fixture
def history(stack: Stack) -> dict[int, dict[str, int]]:
    found = long_history()
    put_long_history(stack, found)
    return found


def test_long_windows_are_exact_sums_over_days_hours_and_edge_minutes(
        history: dict[int, dict[str, int]], client: TestClient) -> None:
    day = client.get("/v1/ads/top", params={"minutes": 1440}).json()
    week = client.get("/v1/ads/top", params={"minutes": 7 * 1440, "n": 5}).json()
    unaligned = client.get("/v1/ads/top", params={"from": "2026-11-21T03:17:00Z",
                                                  "to": "2026-11-26 20:41"}).json()
    by_epoch = client.get("/v1/ads/top", params={"from": str(FIRST_DAY),
                                                 "to": str(FIRST_DAY + 2 * DAY - 60)}).json()

    assert (day["from"], day["to"]) == (iso(LAST_CLOSED - DAY + 60), iso(LAST_CLOSED))
    assert as_rows(day) == ranked_sums(history, LAST_CLOSED - DAY + 60, LAST_CLOSED)
    assert day["read"] == {"day": 0, "hour": 23, "minute": 60}
    assert as_rows(week) == ranked_sums(history, LAST_CLOSED - 7 * DAY + 60, LAST_CLOSED, 5)
    assert week["read"] == {"day": 6, "hour": 23, "minute": 60}
    first, last = FIRST_DAY + DAY + 3 * HOUR + 17 * 60, FIRST_DAY + 6 * DAY + 20 * HOUR + 41 * 60
    assert (unaligned["from"], unaligned["to"], unaligned["minutes"]) == (
        iso(first), iso(last), (last - first) // 60 + 1)
    assert as_rows(unaligned) == ranked_sums(history, first, last)
    assert unaligned["read"] == {"day": 4, "hour": 20 + 20, "minute": 43 + 42}
    assert as_rows(by_epoch) == ranked_sums(history, FIRST_DAY, FIRST_DAY + 2 * DAY - 60)
    assert by_epoch["read"] == {"day": 2, "hour": 0, "minute": 0}


def test_whole_days_and_hours_are_read_from_the_rollups_not_the_minutes(
        stack: Stack, history: dict[int, dict[str, int]], client: TestClient) -> None:
    # As minute retention would: the minutes of days 2 to 5 are gone, their rollups stay.
    with stack.engine().begin() as conn:
        conn.execute(sa.text("DELETE FROM agg.ad_clicks_per_minute WHERE minute >= :a "
                             "AND minute < :b"),
                     {"a": to_datetime(FIRST_DAY + 2 * DAY),
                      "b": to_datetime(FIRST_DAY + 6 * DAY)})

    body = client.get("/v1/ads/top", params={"from": iso(FIRST_DAY + DAY + 23 * HOUR + 30 * 60),
                                             "to": iso(FIRST_DAY + 6 * DAY + 60 * 60)}).json()

    assert as_rows(body) == ranked_sums(history, FIRST_DAY + DAY + 23 * HOUR + 30 * 60,
                                        FIRST_DAY + 6 * DAY + 60 * 60)
    assert body["read"] == {"day": 4, "hour": 1, "minute": 30 + 1}


def test_the_current_hour_and_day_count_what_is_written_so_far_as_the_minutes_do(
        history: dict[int, dict[str, int]], client: TestClient) -> None:
    today = FIRST_DAY + 8 * DAY
    whole_day = client.get("/v1/ads/top", params={"from": iso(today),
                                                  "to": iso(today + DAY - 60)}).json()
    minutes_only = client.get("/v1/ads/top", params={"minutes": 60,
                                                     "at": iso(WRITING)}).json()

    assert history[WRITING], "the minute being written has clicks"
    assert as_rows(whole_day) == ranked_sums(history, today, today + DAY - 60)
    assert whole_day["read"] == {"day": 1, "hour": 0, "minute": 0}
    assert as_rows(minutes_only) == ranked_sums(history, WRITING - 59 * 60, WRITING)
    assert minutes_only["read"] == {"day": 0, "hour": 0, "minute": 60}


def test_an_ads_series_by_hour_and_by_day_are_sums_of_its_closed_minutes(
        history: dict[int, dict[str, int]], client: TestClient) -> None:
    hours = client.get("/v1/ads/ad%2F7/clicks", params={
        "granularity": "hour", "from": "2026-11-27 22:10", "to": "2026-11-29T23:00:00Z"}).json()
    days = client.get("/v1/ads/%C3%BC/clicks", params={"granularity": "day",
                                                       "from": iso(FIRST_DAY)}).json()
    default_hours = client.get("/v1/ads/a/clicks", params={"granularity": "hour"}).json()
    minutes = client.get("/v1/ads/a/clicks").json()

    def expected(ad: str, grain: int, first: int, last: int) -> list[int]:
        sums = rolled_up(history, grain)
        return [sums[t][ad] for t in range(first, min(last, LAST_CLOSED) + 1, grain)]

    start = FIRST_DAY + 7 * DAY + 22 * HOUR
    assert (hours["from"], hours["to"], hours["granularity"]) == (
        iso(start), "2026-11-29T23:00:00Z", "hour")
    assert [p["clicks"] for p in hours["hours"]] == expected("ad/7", HOUR, start, WRITING)
    assert hours["hours"][0]["hour"] == iso(start)
    assert len(hours["hours"]) == 2 + 15  # through the hour of the last closed minute
    assert hours["total"] == sum(p["clicks"] for p in hours["hours"])
    assert [p["clicks"] for p in days["days"]] == expected(
        "ü", DAY, FIRST_DAY, FIRST_DAY + 6 * DAY)
    assert len(days["days"]) == 7
    assert default_hours["to"] == iso(LAST_CLOSED // HOUR * HOUR)
    assert [p["clicks"] for p in default_hours["hours"]] == expected(
        "a", HOUR, LAST_CLOSED // HOUR * HOUR - 23 * HOUR, LAST_CLOSED)
    assert (minutes["granularity"], len(minutes["minutes"])) == ("minute", 60)
    assert minutes["total"] == sum(history[m].get("a", 0)
                                   for m in range(LAST_CLOSED - 59 * 60, LAST_CLOSED + 60, 60))


@pytest.mark.parametrize(("path", "params", "words"), [
    ("/v1/ads/top", {"from": "2026-11-29 14:05", "to": "2026-11-29 14:00"}, "after"),
    ("/v1/ads/top", {"from": "2026-08-01 00:00", "to": "2026-10-30 00:00"}, "90 days"),
    ("/v1/ads/top", {"from": "2026-11-29 14:05", "minutes": 5}, "not both"),
    ("/v1/ads/top", {"to": "2026-11-29 14:05"}, "needs a from"),
    ("/v1/ads/top", {"from": "1 hour ago"}, "epoch seconds"),
    ("/v1/ads/x/clicks", {"granularity": "week"}, "granularity"),
    ("/v1/ads/x/clicks", {"granularity": "hour", "from": "2026-01-01 00:00",
                          "to": "2026-11-29 00:00"}, "90 days"),
    ("/v1/ads/x/clicks", {"granularity": "day", "from": "2026-11-29",
                          "to": "2026-11-28"}, "after"),
    ("/v1/ads/x/clicks", {"from": "2026-11-01 00:00", "to": "2026-11-29 00:00"}, "shorter"),
])
def test_a_bad_window_gets_a_400_that_says_what_to_send(
        client: TestClient, path: str, params: dict[str, object], words: str) -> None:
    response = client.get(path, params=params)

    assert response.status_code == 400
    assert words in response.json()["detail"]
