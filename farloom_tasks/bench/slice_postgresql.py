"""The PostgreSQL side of ``farloom bench slice-options``: the candidate layouts and their SQL.

Bench-only tables in the schema ``bench_slices`` of the throw-away database (no
migration: nothing is decided until the figures are in):

- rows: ``minute_rows`` one row per (minute, slice, value, ad), keyed
  ``(slice, value, minute, ad_id) INCLUDE (clicks)`` so a value's window is one
  index-only range scan; ``minute_top`` the top k per (minute, slice, value);
  ``hour_rows`` the hour rollup, kept by difference (the delta of a first
  revision is every row);
- compact: ``compact_minute`` one row per (minute, slice, value) holding every ad
  of the value ranked, as ``ad_ids[]`` and ``clicks[]`` (the top k is the head);
- both: ``owner_minutes``, the per-minute clicks per campaign and per advertiser.

At close, one statement scans the minute's raw rows once with GROUP BY GROUPING
SETS (one set per slice, plus campaign and advertiser totals) and writes a layout.
"""

from __future__ import annotations

from collections.abc import Sequence

from farloom_tasks.bench.slice_workload import ADVERTISER, VALUE_SEPARATOR
from farloom_tasks.core.dimensions import CLICK_DIMENSIONS, Slice

SCHEMA = "bench_slices"
CREATE = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.minute_rows (
    minute timestamptz NOT NULL, slice text COLLATE "C" NOT NULL,
    value text COLLATE "C" NOT NULL, ad_id text COLLATE "C" NOT NULL,
    clicks bigint NOT NULL, revision bigint NOT NULL,
    PRIMARY KEY (slice, value, minute, ad_id) INCLUDE (clicks));
CREATE TABLE IF NOT EXISTS {SCHEMA}.minute_top (
    minute timestamptz NOT NULL, slice text COLLATE "C" NOT NULL,
    value text COLLATE "C" NOT NULL, rank int NOT NULL, ad_id text COLLATE "C" NOT NULL,
    clicks bigint NOT NULL, revision bigint NOT NULL,
    PRIMARY KEY (minute, slice, value, rank));
CREATE TABLE IF NOT EXISTS {SCHEMA}.hour_rows (
    hour timestamptz NOT NULL, slice text COLLATE "C" NOT NULL,
    value text COLLATE "C" NOT NULL, ad_id text COLLATE "C" NOT NULL, clicks bigint NOT NULL,
    PRIMARY KEY (slice, value, hour, ad_id) INCLUDE (clicks));
CREATE TABLE IF NOT EXISTS {SCHEMA}.compact_minute (
    minute timestamptz NOT NULL, slice text COLLATE "C" NOT NULL,
    value text COLLATE "C" NOT NULL, ad_ids text[] NOT NULL, clicks bigint[] NOT NULL,
    revision bigint NOT NULL, PRIMARY KEY (slice, value, minute));
CREATE TABLE IF NOT EXISTS {SCHEMA}.owner_minutes (
    minute timestamptz NOT NULL, kind text COLLATE "C" NOT NULL,
    owner text COLLATE "C" NOT NULL, clicks bigint NOT NULL, revision bigint NOT NULL,
    PRIMARY KEY (minute, kind, owner));
"""
ROWS_TABLES = ("minute_rows", "minute_top", "hour_rows", "owner_minutes")
COMPACT_TABLES = ("compact_minute", "owner_minutes")
# What the reads run on: the same layouts, holding 60 minutes of one value.
READ_TABLES = {"read_rows": "minute_rows", "read_hour": "hour_rows",
               "read_compact": "compact_minute"}


def _columns(slices: Sequence[Slice]) -> list[str]:
    used = [d for d in CLICK_DIMENSIONS if any(d in s.dimensions for s in slices)]
    return [*used, "advertiser_id", "campaign_id", "ad_id"]


def _mask(columns: list[str], grouped: Sequence[str]) -> int:
    # GROUPING() sets the bit of every column *not* grouped, the first column highest.
    return sum(1 << (len(columns) - 1 - i) for i, c in enumerate(columns) if c not in grouped)


def _grouped_ctes(slices: Sequence[Slice]) -> str:
    """``grouped`` (the one raw scan), ``sliced`` (slice, value, ad_id, clicks) and the
    ``owners`` insert, for a WITH list; parameters m (epoch s) and r (revision)."""
    columns = _columns(slices)
    sets = [(s.name, [*s.dimensions, "ad_id"]) for s in slices]
    sets.append((ADVERTISER, ["advertiser_id", "ad_id"]))
    names = ", ".join(f"({', '.join(cols)})" for _, cols in sets)
    campaign, advertiser = _mask(columns, ["campaign_id"]), _mask(columns, ["advertiser_id"])
    slice_case = " ".join(f"WHEN {_mask(columns, cols)} THEN '{name}'" for name, cols in sets)
    value_case = " ".join(
        f"WHEN {_mask(columns, cols)} THEN concat_ws('{VALUE_SEPARATOR}', "
        + ", ".join(f"coalesce({c}, '')" for c in cols[:-1]) + ")" for _, cols in sets)
    masks = ", ".join(str(_mask(columns, cols)) for _, cols in sets)
    return f"""
grouped AS MATERIALIZED (
    SELECT GROUPING({', '.join(columns)}) AS g, {', '.join(columns)}, count(*) AS clicks
    FROM raw.ad_clicks WHERE minute = to_timestamp(%(m)s)
    GROUP BY GROUPING SETS ({names}, (campaign_id), (advertiser_id))
), sliced AS MATERIALIZED (
    SELECT CASE g {slice_case} END AS slice, CASE g {value_case} END AS value, ad_id, clicks
    FROM grouped WHERE g IN ({masks})
), owners AS (
    INSERT INTO {SCHEMA}.owner_minutes (minute, kind, owner, clicks, revision)
    SELECT to_timestamp(%(m)s), CASE g WHEN {campaign} THEN 'campaign' ELSE 'advertiser' END,
           CASE g WHEN {campaign} THEN campaign_id ELSE advertiser_id END, clicks, %(r)s
    FROM grouped WHERE g IN ({campaign}, {advertiser})
)"""


_HOUR_FROM = """
INSERT INTO {schema}.hour_rows AS t (hour, slice, value, ad_id, clicks)
SELECT date_trunc('hour', to_timestamp(%(m)s), 'UTC'), slice, value, ad_id, clicks
FROM {source} ORDER BY slice, value, ad_id
ON CONFLICT (slice, value, hour, ad_id) DO UPDATE SET clicks = t.clicks + excluded.clicks"""
_TOP_FROM = """
INSERT INTO {schema}.minute_top (minute, slice, value, rank, ad_id, clicks, revision)
SELECT to_timestamp(%(m)s), slice, value, rank, ad_id, clicks, %(r)s FROM (
    SELECT slice, value, ad_id, clicks, row_number() OVER (
        PARTITION BY slice, value ORDER BY clicks DESC, ad_id COLLATE "C") AS rank
    FROM {source}) ranked
WHERE rank <= %(k)s"""


def rows_at_close(slices: Sequence[Slice], hour_rollup: bool) -> str:
    """(a): the minute's slices as rows, their top k, and (optionally) the hour rollup."""
    hour = (", hour_rows AS (" + _HOUR_FROM.format(schema=SCHEMA, source="sliced") + ")"
            if hour_rollup else "")
    return (f"WITH {_grouped_ctes(slices)}, minute_rows AS (\n"
            f"    INSERT INTO {SCHEMA}.minute_rows "
            "(minute, slice, value, ad_id, clicks, revision)\n"
            f"    SELECT to_timestamp(%(m)s), slice, value, ad_id, clicks, %(r)s FROM sliced\n"
            f"){hour}\n" + _TOP_FROM.format(schema=SCHEMA, source="sliced"))


def compact_at_close(slices: Sequence[Slice]) -> str:
    """(b): one row per (minute, slice, value) with every ad ranked in two arrays."""
    order = 'ORDER BY clicks DESC, ad_id COLLATE "C"'
    return (f"WITH {_grouped_ctes(slices)}\n"
            f"INSERT INTO {SCHEMA}.compact_minute "
            "(minute, slice, value, ad_ids, clicks, revision)\n"
            f"SELECT to_timestamp(%(m)s), slice, value, array_agg(ad_id {order}), "
            f"array_agg(clicks {order}), %(r)s FROM sliced GROUP BY slice, value")


def hour_from_minute_rows() -> str:
    """(c) as rows: the hour rollup from the rows just copied in."""
    return _HOUR_FROM.format(schema=SCHEMA, source=(
        f"(SELECT slice, value, ad_id, clicks FROM {SCHEMA}.minute_rows "
        "WHERE minute = to_timestamp(%(m)s)) written"))


def top_from_minute_rows() -> str:
    return _TOP_FROM.format(schema=SCHEMA, source=(
        f"(SELECT slice, value, ad_id, clicks FROM {SCHEMA}.minute_rows "
        "WHERE minute = to_timestamp(%(m)s)) written"))


def truncate(tables: Sequence[str]) -> str:
    return f"TRUNCATE {', '.join(f'{SCHEMA}.{t}' for t in tables)}"


def size_of(tables: Sequence[str]) -> str:
    """Bytes on disk (heap, indexes, TOAST) of ``tables``."""
    return " + ".join(f"pg_total_relation_size('{SCHEMA}.{t}')" for t in tables)


def load_reads(minutes: int) -> list[str]:
    """The read tables: minute m's rows of one value (slice %(s)s, value %(v)s) copied
    into ``minutes`` consecutive minutes from m, and their hour rollup."""
    copies = f"generate_series(0, {minutes - 1}) AS n"
    shift = "minute + n * interval '1 minute'"
    statements = [f"DROP TABLE IF EXISTS {SCHEMA}.{t}" for t in READ_TABLES]
    statements += [f"CREATE TABLE {SCHEMA}.{t} (LIKE {SCHEMA}.{source} INCLUDING ALL)"
                   for t, source in READ_TABLES.items()]
    where = "slice = %(s)s AND value = %(v)s AND minute = to_timestamp(%(m)s)"
    statements += [
        f"INSERT INTO {SCHEMA}.read_rows SELECT {shift}, slice, value, ad_id, clicks, revision "
        f"FROM {SCHEMA}.minute_rows, {copies} WHERE {where} ORDER BY 1, ad_id",
        f"INSERT INTO {SCHEMA}.read_compact SELECT {shift}, slice, value, ad_ids, clicks, "
        f"revision FROM {SCHEMA}.compact_minute, {copies} WHERE {where}",
        f"INSERT INTO {SCHEMA}.read_hour SELECT date_trunc('hour', minute, 'UTC'), slice, value, "
        f"ad_id, sum(clicks) FROM {SCHEMA}.read_rows GROUP BY 1, 2, 3, 4",
    ]
    return statements


_TOP_ORDER = 'ORDER BY clicks DESC, ad_id COLLATE "C" LIMIT %(n)s'
_WINDOW = "slice = %(s)s AND value = %(v)s AND minute >= to_timestamp(%(m)s) " \
          "AND minute < to_timestamp(%(m)s) + %(minutes)s * interval '1 minute'"
READS = {
    "rows: the per-minute rows summed": (
        f"SELECT ad_id, sum(clicks) AS clicks FROM {SCHEMA}.read_rows WHERE {_WINDOW} "
        f"GROUP BY ad_id {_TOP_ORDER}"),
    "compact: the per-minute arrays unnested and summed": (
        f"SELECT ad_id, sum(c) AS clicks FROM {SCHEMA}.read_compact, "
        f"unnest(ad_ids, clicks) AS u(ad_id, c) WHERE {_WINDOW} GROUP BY ad_id {_TOP_ORDER}"),
    "rows, the hour rollup (an aligned hour only)": (
        f"SELECT ad_id, clicks FROM {SCHEMA}.read_hour WHERE slice = %(s)s AND value = %(v)s "
        f"AND hour = date_trunc('hour', to_timestamp(%(m)s), 'UTC') {_TOP_ORDER}"),
}
