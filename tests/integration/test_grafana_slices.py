"""Grafana's slice variables and panels, run for real under the read-only role.

Every query of deploy/grafana/dashboards/farloom.json that reads agg.slice_values (the
`country`, `device` and `advertiser` variables and the panels that use them) is
interpolated as Grafana does it, All included, and run against slice rows this test
writes; each answer must equal sums made straight from the clicks the rows were made
from. The other panels are run by test_api.py's
test_every_grafana_panel_query_runs_under_the_read_only_role.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest
import sqlalchemy as sa

from farloom_tasks.core.windows import iso, minute_of, to_datetime
from farloom_tasks.stores import agg_reads
from tests.support.stack import PROJECT_ROOT, Stack

DASHBOARD = PROJECT_ROOT / "deploy/grafana/dashboards/farloom.json"
BASE = minute_of(datetime(2026, 11, 29, 14, 0, tzinfo=UTC).timestamp())
TIME_FROM, TIME_TO = iso(BASE), iso(BASE + 120)  # three minutes, both ends inclusive
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
    """Clicks over four minutes; the first is before the range, with the only FR."""
    chooser = random.Random(13)
    clicks = [Click(BASE - 60, "ad-1", "FR", "tv")] * 3
    for minute in (BASE - 60, BASE, BASE + 60, BASE + 120):
        for _ in range(400):
            clicks.append(Click(minute, chooser.choice(sorted(OWNER)),
                                chooser.choice(["US", "US", "DE", None]),
                                chooser.choice(["mobile", "desktop", "tv", None])))
    return clicks


def write_slices(stack: Stack, clicks: list[Click]) -> None:
    """The slice rows of these clicks, as the close writes them (migration 0012)."""
    per_value: dict[tuple[int, str, str], Counter[str]] = defaultdict(Counter)
    for click in clicks:
        for slice_name in SLICE_VARIABLES:
            value = click.value(slice_name)
            if value is not None:
                per_value[click.minute, slice_name, value][click.ad_id] += 1
    rows = []
    for (minute, slice_name, value), ads in sorted(per_value.items()):
        ranked = sorted(ads.items(), key=lambda item: (-item[1], item[0]))
        rows.append({"m": to_datetime(minute), "s": slice_name, "v": value,
                     "c": sum(ads.values()), "d": len(ads),
                     "ids": [ad for ad, _ in ranked], "n": [n for _, n in ranked]})
    with stack.engine().begin() as conn:
        conn.execute(sa.text("SELECT raw.ensure_partition('agg.slice_values', :m, "
                             "interval '1 day', NULL, NULL)"), {"m": to_datetime(BASE)})
        conn.execute(sa.text("INSERT INTO agg.slice_values VALUES "
                             "(:m, :s, :v, 1, :c, :d, :ids, :n)"), rows)


def interpolate(sql: str, variables: Mapping[str, dict[str, Any]],
                chosen: Mapping[str, str | None]) -> str:
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
    sql = re.sub(rf"\$\{{({names})\}}|\$({names})\b", variable, sql)
    sql = re.sub(r"\$__timeFilter\(([^)]*)\)",
                 lambda m: f"{m.group(1)} BETWEEN '{TIME_FROM}' AND '{TIME_TO}'", sql)
    return sql.replace("$__timeFrom()", f"'{TIME_FROM}'").replace("$__timeTo()", f"'{TIME_TO}'")


def slice_of(sql: str) -> str:
    (name,) = re.findall(r"slice = '([^']+)'", sql)
    return str(name)


def matching(clicks: list[Click], slice_name: str, chosen: Mapping[str, str | None]) -> list[Click]:
    """The clicks in the range that a slice's query with these choices counts."""
    kept = []
    for click in clicks:
        if not BASE <= click.minute <= BASE + 120 or click.value(slice_name) is None:
            continue
        wanted = {name: chosen.get(name) for name in SLICE_VARIABLES[slice_name]}
        have = {"country": click.country, "device": click.device,
                "advertiser": OWNER[click.ad_id]}
        if all(value is ALL or have[name] == value for name, value in wanted.items()):
            kept.append(click)
    return kept


EVERY_SLICE = set(SLICE_VARIABLES)


@pytest.mark.parametrize(("chosen", "answered"), [
    ({"country": ALL, "device": ALL, "advertiser": ALL}, EVERY_SLICE),
    ({"country": "US", "device": "mobile", "advertiser": "o'neil"}, EVERY_SLICE),
    ({"country": "DE", "device": ALL, "advertiser": "acme"}, EVERY_SLICE),
    # FR has clicks only before the range, and nobody has no ads.
    ({"country": "FR", "device": "tv", "advertiser": "nobody"}, {"device"}),
], ids=["all", "us-mobile-quoted", "de-any-acme", "none-in-range"])
def test_the_slice_variables_and_panels_equal_sums_of_the_clicks(
        stack: Stack, chosen: dict[str, str | None], answered: set[str]) -> None:
    clicks = feed()
    write_slices(stack, clicks)
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {spec["name"]: spec for spec in dashboard["templating"]["list"]}
    slice_targets = [(panel, target) for panel in dashboard["panels"]
                     for target in panel.get("targets", [])
                     if "agg.slice_values" in target["rawSql"]]
    engine = sa.create_engine(agg_reads.read_only_url(stack.settings.database_url, ""))
    options: dict[str, list[str]] = {}
    answers: list[tuple[str, str, str, list[tuple[Any, ...]]]] = []
    try:
        with engine.connect() as conn:
            for name in ("country", "device", "advertiser"):
                sql = interpolate(variables[name]["query"], variables, chosen)
                options[name] = [row[0] for row in conn.exec_driver_sql(sql)]
            for panel, target in slice_targets:
                sql = interpolate(target["rawSql"], variables, chosen)
                rows = [tuple(row) for row in conn.exec_driver_sql(sql)]
                answers.append((panel["type"], panel["title"], slice_of(sql), rows))
    finally:
        engine.dispose()

    in_range = [click for click in clicks if click.minute >= BASE]
    for name in ("country", "device", "advertiser"):
        assert variables[name]["includeAll"] and variables[name]["refresh"] == 2
        assert options[name] == sorted({v for c in in_range if (v := c.value(name)) is not None})
    assert "FR" not in options["country"]
    assert {slice_name for kind, _, slice_name, _ in answers if kind == "timeseries"} == set(
        SLICE_VARIABLES)
    assert {slice_name for kind, _, slice_name, _ in answers if kind == "table"} == {
        "country", "device", "advertiser"}
    for kind, title, slice_name, rows in answers:
        counted = matching(clicks, slice_name, chosen)
        if kind == "timeseries":
            per_minute = Counter(click.minute for click in counted)
            expected: list[tuple[Any, ...]] = [(to_datetime(m), n)
                                               for m, n in sorted(per_minute.items())]
        else:
            per_ad = Counter(click.ad_id for click in counted)
            ranked = sorted(per_ad.items(), key=lambda item: (-item[1], item[0]))[:100]
            expected = [(rank, ad, n) for rank, (ad, n) in enumerate(ranked, 1)]
        assert [tuple(int(x) if not isinstance(x, (str, datetime)) else x for x in row)
                for row in rows] == expected, (title, slice_name)
    assert {slice_name for _, _, slice_name, rows in answers if rows} == answered


def test_every_variable_a_query_or_title_names_is_one_the_dashboard_defines() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    defined = {spec["name"] for spec in dashboard["templating"]["list"]}
    texts = [panel["title"] for panel in dashboard["panels"]]
    texts += [t["rawSql"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    texts += [spec["query"] for spec in dashboard["templating"]["list"] if spec["type"] == "query"]
    named = {a or b for text in texts
             for a, b in re.findall(r"\$\{(\w+)[^}]*\}|\$(?!__)(\w+)", text)}

    assert named == defined == {"ad", "country", "device", "advertiser"}
