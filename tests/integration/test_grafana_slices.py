"""Grafana's slice variables and panels, run for real under the read-only role.

Every query of deploy/grafana/dashboards/farloom.json that reads slices (the `country`,
`device` and `advertiser` variables and the panels that use them) is interpolated as
Grafana does it, All included, over ranges of minutes, days (hour rollups) and weeks
(day rollups), and run against slice rows the real writer (pipeline/slice_aggregation)
made from raw clicks this test stores; each answer must equal sums made straight from
those clicks. The other panels are run by test_api.py's
test_every_grafana_panel_query_runs_under_the_read_only_role.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest
import sqlalchemy as sa

from farloom_tasks.core import clicks as contract
from farloom_tasks.core.dimensions import parse_dimensions
from farloom_tasks.core.partitions import DAY, HOUR, start_of
from farloom_tasks.core.windows import MINUTE, iso, minute_of, to_datetime
from farloom_tasks.pipeline import slice_aggregation, slice_rollup_builds
from farloom_tasks.stores import agg_reads
from farloom_tasks.stores import slices as slice_store
from farloom_tasks.stores.raw import RawStore
from tests.support.minute_checks import set_watermark
from tests.support.stack import PROJECT_ROOT, Stack

DASHBOARD = PROJECT_ROOT / "deploy/grafana/dashboards/farloom.json"
BASE = minute_of(datetime(2026, 11, 29, 14, 0, tzinfo=UTC).timestamp())
# Ranges, both ends inclusive: three minutes (minute series); two days and a bit (hour
# series; the tops read a whole day, hours and edge minutes); three weeks (day series).
MINUTES_RANGE = (BASE, BASE + 120)
DAYS_RANGE = (BASE - 2 * DAY - 30 * MINUTE, BASE + 150 * MINUTE)
WEEKS_RANGE = (BASE - 21 * DAY, BASE + 180 * MINUTE)
ALL = None  # the variable's All option
# An ad's advertiser; one advertiser id with a quote, which Grafana must escape.
OWNER = {f"ad-{n}": ("acme" if n < 5 else "o'neil" if n < 9 else "globex") for n in range(12)}
SLICE_VARIABLES = {"country": ("country",), "device": ("device",),
                   "advertiser": ("advertiser",), "country*device": ("country", "device")}


class Click(NamedTuple):
    minute: int
    ad_id: str
    country: str | None
    device: str | None

    def value(self, slice_name: str) -> str | None:
        if slice_name == "advertiser":
            return OWNER[self.ad_id]
        parts = [getattr(self, dimension) for dimension in slice_name.split("*")]
        return None if None in parts else "*".join(parts)


def feed() -> list[Click]:
    """Clicks over four minutes, the first before the minutes range with the only FR,
    and over minutes days and weeks before it."""
    chooser = random.Random(13)
    clicks = [Click(BASE - 60, "ad-1", "FR", "tv")] * 3
    far = (BASE - 20 * DAY, BASE - 19 * DAY + 3 * MINUTE, BASE - 2 * DAY - 5 * MINUTE,
           BASE - DAY, BASE - DAY + 7 * HOUR + 13 * MINUTE)
    for minute in (*far, BASE - 60, BASE, BASE + 60, BASE + 120):
        for _ in range(400 if minute >= BASE - 60 else 150):
            clicks.append(Click(minute, chooser.choice(sorted(OWNER)),
                                chooser.choice(["US", "US", "DE", None]),
                                chooser.choice(["mobile", "desktop", "tv", None])))
    return clicks


def write_slices(stack: Stack, clicks: list[Click]) -> None:
    """The clicks in raw (the ads catalog from their owners), then every minute's slices,
    made by the slice writer, and some of their rollups, by the builder."""
    raw = RawStore(stack.engine(), stack.settings.shard_count)
    try:
        raw.commit_batch([contract.Click(f"g-{i}", c.ad_id, c.minute + i % 60 + 0.5,
                                         country=c.country, device=c.device,
                                         campaign_id=f"camp-{OWNER[c.ad_id]}",
                                         advertiser_id=OWNER[c.ad_id])
                          for i, c in enumerate(clicks)])
    finally:
        raw.close()
    slices = parse_dimensions("country,device,country*device")
    for minute in sorted({c.minute for c in clicks}):
        slice_aggregation.aggregate(
            stack.engine(), slices, minute=minute,
            revision=1, partition_hours=stack.settings.minute_partition_hours,
            work_mem_mb=stack.settings.slice_work_mem_mb)
    # The rollup builder, as beat's sweep would run it: the day before BASE's (with its
    # hours) and the hour before BASE's are built, the rest is left to be read from
    # minutes, so every panel reads both.
    set_watermark(stack, max(c.minute for c in clicks))
    names = slice_store.slice_names(slices)
    day = slice_rollup_builds.build_period(stack.engine(), names, "day",
                                           start_of(BASE, DAY) - DAY)
    hour = slice_rollup_builds.build_period(stack.engine(), names, "hour", BASE - HOUR)
    assert ("day", start_of(BASE, DAY) - DAY, "country", 0) not in day.periods  # rows made
    assert {(g, p) for g, p, _, _ in day.periods + hour.periods} == {
        ("day", start_of(BASE, DAY) - DAY), ("hour", BASE - HOUR),
        *(("hour", start_of(BASE, DAY) - DAY + h * HOUR) for h in range(24))}


def interpolate(sql: str, variables: Mapping[str, dict[str, Any]],
                chosen: Mapping[str, str | None], span: tuple[int, int]) -> str:
    """The SQL Grafana's PostgreSQL data source runs: a variable with an All option is
    quoted as a literal, or is its custom all value as written; then the time macros."""
    def variable(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        spec = variables[name]
        value = chosen.get(name)
        if value is ALL:
            return str(spec["allValue"])
        escaped = value.replace("'", "''")
        return f"'{escaped}'" if spec.get("includeAll") or spec.get("multi") else escaped
    names = "|".join(re.escape(name) for name in variables)
    time_from, time_to = iso(span[0]), iso(span[1])
    sql = re.sub(rf"\$\{{({names})\}}|\$({names})\b", variable, sql)
    sql = re.sub(r"\$__timeFilter\(([^)]*)\)",
                 lambda m: f"{m.group(1)} BETWEEN '{time_from}' AND '{time_to}'", sql)
    return sql.replace("$__timeFrom()", f"'{time_from}'").replace("$__timeTo()", f"'{time_to}'")


def slice_of(sql: str) -> str:
    """The one slice every branch of the query reads."""
    (name,) = set(re.findall(r"slice = '([^']+)'", sql))
    return str(name)


def matching(clicks: list[Click], slice_name: str,
             chosen: Mapping[str, str | None]) -> list[Click]:
    """The clicks that a slice's query with these choices counts, at any time."""
    kept = []
    for click in clicks:
        if click.value(slice_name) is None:
            continue
        wanted = {name: chosen.get(name) for name in SLICE_VARIABLES[slice_name]}
        have = {"country": click.country, "device": click.device,
                "advertiser": OWNER[click.ad_id]}
        if all(value is ALL or have[name] == value for name, value in wanted.items()):
            kept.append(click)
    return kept


def series_grain(span: tuple[int, int]) -> int:
    """As the panels switch (the per-ad ones too): minutes up to 6 h, hours to 14 days."""
    length = span[1] - span[0]
    return MINUTE if length <= 6 * HOUR else HOUR if length <= 14 * DAY else DAY


EVERY_SLICE = set(SLICE_VARIABLES)
CHOICES: dict[str, dict[str, str | None]] = {
    "all": {"country": ALL, "device": ALL, "advertiser": ALL},
    "us-mobile-quoted": {"country": "US", "device": "mobile", "advertiser": "o'neil"},
    "de-any-acme": {"country": "DE", "device": ALL, "advertiser": "acme"},
    # FR has clicks only before the minutes range, and nobody has no ads.
    "none-in-range": {"country": "FR", "device": "tv", "advertiser": "nobody"}}


@pytest.mark.parametrize("span", [MINUTES_RANGE, DAYS_RANGE, WEEKS_RANGE],
                         ids=["minutes", "days", "weeks"])
def test_the_slice_variables_and_panels_equal_sums_of_the_clicks(
        stack: Stack, span: tuple[int, int]) -> None:
    clicks = feed()
    write_slices(stack, clicks)
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {spec["name"]: spec for spec in dashboard["templating"]["list"]}
    slice_targets = [(panel, target) for panel in dashboard["panels"]
                     for target in panel.get("targets", [])
                     if "agg.slice_values" in target["rawSql"]]
    engine = sa.create_engine(agg_reads.read_only_url(stack.settings.database_url, ""))
    try:
        for label, chosen in CHOICES.items():
            with engine.connect() as conn:
                options = {name: [row[0] for row in conn.exec_driver_sql(
                    interpolate(variables[name]["query"], variables, chosen, span))]
                    for name in ("country", "device", "advertiser")}
                answers = []
                for panel, target in slice_targets:
                    sql = interpolate(target["rawSql"], variables, chosen, span)
                    answers.append((panel["type"], panel["title"], slice_of(sql),
                                    [tuple(row) for row in conn.exec_driver_sql(sql)]))
            check(clicks, variables, options, answers, chosen, span, label)
    finally:
        engine.dispose()


def check(clicks: list[Click], variables: Mapping[str, dict[str, Any]],
          options: dict[str, list[str]], answers: list[tuple[str, str, str, list[Any]]],
          chosen: Mapping[str, str | None], span: tuple[int, int], label: str) -> None:
    first, last = span
    # A variable lists the values of every hour the range touches.
    touched = [c for c in clicks if start_of(first, HOUR) <= c.minute <= last]
    for name in ("country", "device", "advertiser"):
        assert variables[name]["includeAll"] and variables[name]["refresh"] == 2
        assert options[name] == sorted({v for c in touched if (v := c.value(name)) is not None})
    assert ("FR" in options["country"]) is (span != MINUTES_RANGE)
    assert {slice_name for kind, _, slice_name, _ in answers if kind == "timeseries"} == set(
        SLICE_VARIABLES)
    assert {slice_name for kind, _, slice_name, _ in answers if kind == "table"} == {
        "country", "device", "advertiser"}
    grain = series_grain(span)
    for kind, title, slice_name, rows in answers:
        counted = matching(clicks, slice_name, chosen)
        if kind == "timeseries":
            # Every minute, hour or day that starts in the range, whole.
            per_period = Counter(start_of(click.minute, grain) for click in counted)
            expected: list[tuple[Any, ...]] = [(to_datetime(at), n)
                                               for at, n in sorted(per_period.items())
                                               if first <= at <= last]
        else:  # exact over the range's minutes, whatever it reads them from
            per_ad = Counter(c.ad_id for c in counted if first <= c.minute <= last)
            ranked = sorted(per_ad.items(), key=lambda item: (-item[1], item[0]))[:100]
            expected = [(rank, ad, n) for rank, (ad, n) in enumerate(ranked, 1)]
        assert [tuple(int(x) if not isinstance(x, (str, datetime)) else x for x in row)
                for row in rows] == expected, (label, title, slice_name)
    answered = {slice_name for _, _, slice_name, rows in answers if rows}
    if label != "none-in-range":
        assert answered == EVERY_SLICE, label
    elif span == MINUTES_RANGE:
        assert answered == {"device"}


def test_every_variable_a_query_or_title_names_is_one_the_dashboard_defines() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    defined = {spec["name"] for spec in dashboard["templating"]["list"]}
    texts = [panel["title"] for panel in dashboard["panels"]]
    texts += [t["rawSql"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    texts += [spec["query"] for spec in dashboard["templating"]["list"] if spec["type"] == "query"]
    named = {a or b for text in texts
             for a, b in re.findall(r"\$\{(\w+)[^}]*\}|\$(?!__)(\w+)", text)}

    assert named == defined == {"ad", "country", "device", "advertiser"}
