"""Helpers for the aggregation tests: write clicks, drive the closer, read agg and raw back.

Every wait is bounded and fails with what it was waiting for; nothing here
asserts on speed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from farloom_tasks import processes
from farloom_tasks.core import topk
from farloom_tasks.core.clicks import Click
from farloom_tasks.core.windows import minute_of, to_datetime
from farloom_tasks.pipeline.durable_write import DurableWriter
from farloom_tasks.stores.raw import RawStore
from tests.support.celery_worker import TEST_ENV
from tests.support.database import sql
from tests.support.stack import Stack
from tests.support.waiting import wait_for

TEST_K = int(TEST_ENV["FARLOOM_TOP_K"])
WAIT_SECONDS = 90.0

Counts = Counter[tuple[int, str]]  # (minute, ad_id) -> clicks


def durable_writer(stack: Stack) -> tuple[DurableWriter, RawStore]:
    raw = RawStore(stack.engine(), stack.settings.shard_count)
    return DurableWriter(raw, stack.counts()), raw


def clicks_for(minute: int, prefix: str, per_ad: dict[str, int]) -> list[Click]:
    """``per_ad[ad]`` distinct clicks on each ad, spread over ``minute``."""
    clicks = []
    for ad_id, n in per_ad.items():
        for i in range(n):
            clicks.append(Click(f"{prefix}-{ad_id}-{i}", ad_id, minute + (i * 7 % 60) + 0.5))
    return clicks


def counted(clicks: Iterable[Click]) -> Counts:
    """What agg must hold for these clicks: distinct click ids only."""
    unique: dict[str, Click] = {}
    for click in clicks:
        unique.setdefault(click.click_id, click)  # the first one stored wins
    return Counter((minute_of(c.clicked_at), c.ad_id) for c in unique.values())


def set_watermark(stack: Stack, minute: int | None) -> None:
    sql(stack, "UPDATE agg.watermark SET closed_through = :m WHERE id = 1",
        m=None if minute is None else to_datetime(minute))


def closes(stack: Stack, minutes: Sequence[int]) -> dict[int, tuple[int, int | None, int | None]]:
    """minute -> (attempts, started_revision, published_revision)."""
    rows = sql(stack, "SELECT extract(epoch FROM minute)::bigint, attempts, started_revision, "
               "published_revision FROM agg.minute_closes WHERE minute = ANY(:ms)",
               ms=[to_datetime(m) for m in minutes])
    return {int(m): (a, s, p) for m, a, s, p in rows}


def wait_published(stack: Stack, minutes: Sequence[int], after: int = 0,
                   tick: Any = None) -> dict[int, tuple[int, int | None, int | None]]:
    """Wait until every minute has a published revision newer than ``after``.

    ``tick`` (optional) is called on each poll, standing in for beat.
    """
    def done() -> Any:
        if tick is not None:
            tick()
        state = closes(stack, minutes)
        late = sql(stack, "SELECT count(*) FROM agg.late_minutes")[0][0]
        ready = all(((state.get(m) or (0, None, None))[2] or 0) > after for m in minutes)
        return state if ready and late == 0 else None

    result: dict[int, tuple[int, int | None, int | None]] = wait_for(
        f"minutes {list(minutes)} to be published", done, WAIT_SECONDS, poll=0.25)
    return result


@pytest.fixture
def aggregate_writer(stack: Stack, tmp_path: Path) -> Iterator[None]:
    """`farloom write-aggregates` running, for `--wait` to have something to wait for."""
    with open(tmp_path / "writer.log", "w") as log:
        process = stack.spawn("write-aggregates", log=log)
        try:
            yield
        finally:
            processes.stop(process, grace=20)


def write_aggregates(stack: Stack) -> None:
    """Run the aggregated writer until the queue is empty."""
    done = stack.farloom("write-aggregates", "--burst", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def agg_counts(stack: Stack, minutes: Sequence[int]) -> Counts:
    rows = sql(stack, "SELECT extract(epoch FROM minute)::bigint, ad_id, clicks "
               "FROM agg.ad_clicks_per_minute WHERE minute = ANY(:ms)",
               ms=[to_datetime(m) for m in minutes])
    return Counter({(int(m), ad): int(n) for m, ad, n in rows})


def raw_counts(stack: Stack, minutes: Sequence[int]) -> Counts:
    rows = sql(stack, "SELECT extract(epoch FROM date_trunc('minute', clicked_at))::bigint, "
               "ad_id, count(*) FROM raw.ad_clicks "
               "WHERE date_trunc('minute', clicked_at) = ANY(:ms) GROUP BY 1, 2",
               ms=[to_datetime(m) for m in minutes])
    return Counter({(int(m), ad): int(n) for m, ad, n in rows})


def assert_agg_is(stack: Stack, expected: Counts, minutes: Sequence[int]) -> None:
    """agg equals ``expected`` and raw, per ad, in totals and in the top k."""
    found = agg_counts(stack, minutes)
    assert found == expected, f"agg has extra {found - expected}, lacks {expected - found}"
    assert raw_counts(stack, minutes) == expected
    for minute in minutes:
        ads = [(ad, n) for (m, ad), n in expected.items() if m == minute]
        totals = sql(stack, "SELECT clicks, distinct_ads FROM agg.minute_totals "
                     "WHERE minute = :m", m=to_datetime(minute))
        assert [tuple(row) for row in totals] == [(sum(n for _, n in ads), len(ads))], (
            minute, totals)
        top = sql(stack, "SELECT ad_id, clicks FROM agg.top_ads WHERE minute = :m "
                  "ORDER BY rank", m=to_datetime(minute))
        assert [tuple(row) for row in top] == topk.top_k(ads, TEST_K)


Rollups = dict[tuple[str, int, str | None], int]  # (grain, start, ad_id; None: the total)
ROLLUP_GRAINS = (("hour", 3600), ("day", 86_400))


def expected_rollups(counts: Counts) -> Rollups:
    """What the hour and day rollups must hold for these per-minute counts."""
    summed: Counter[tuple[str, int, str | None]] = Counter()
    for (minute, ad_id), clicks in counts.items():
        for grain, length in ROLLUP_GRAINS:
            start = minute - minute % length
            summed[(grain, start, ad_id)] += clicks
            summed[(grain, start, None)] += clicks
    return {key: clicks for key, clicks in summed.items() if clicks}


def rollups_in(stack: Stack) -> Rollups:
    """Every row of the four rollup tables."""
    rows = sql(stack, """
        SELECT 'hour', extract(epoch FROM hour)::bigint, ad_id, clicks FROM agg.ad_clicks_per_hour
        UNION ALL SELECT 'day', extract(epoch FROM day)::bigint, ad_id, clicks
                  FROM agg.ad_clicks_per_day
        UNION ALL SELECT 'hour', extract(epoch FROM hour)::bigint, NULL, clicks
                  FROM agg.hour_totals
        UNION ALL SELECT 'day', extract(epoch FROM day)::bigint, NULL, clicks FROM agg.day_totals
    """)
    return {(grain, int(start), ad_id): int(clicks) for grain, start, ad_id, clicks in rows}


def assert_rollups_are(stack: Stack, counts: Counts) -> None:
    """The rollups hold exactly the sums of ``counts`` (no other row, none of 0 clicks)."""
    found, expected = rollups_in(stack), expected_rollups(counts)
    extra = {k: v for k, v in found.items() if expected.get(k) != v}
    lacking = {k: v for k, v in expected.items() if found.get(k) != v}
    assert found == expected, f"rollups have {extra}, lack {lacking}"
