"""Has the pipeline settled, and does everything it wrote equal the feed's own truth?

``assert_exact`` first waits (bounded) for the pipeline to settle: every valid
click stored, the outbox drained, no late minute pending, every feed minute
closed with its latest revision published and written, the aggregates queue
empty, every dead letter in place. Then it checks, against counts the test
computed from its own input (``ClickFeed``), never from the system:
(a) raw holds exactly one row per valid click id sent, and nothing else;
(b) for every minute, agg.ad_clicks_per_minute, agg.minute_totals (at the
    latest published revision) and agg.top_ads equal the feed's counts, and no
    minute outside the feed has clicks;
(c) farloom.clicks.dead holds every invalid element, by reason code, and
    nothing valid. Dead letters are at least once (dead_letters.py: a worker
    killed between dead-lettering and its ack publishes them again), so the
    count is of distinct dead letters; repeats are reported, not failed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from farloom_tasks.stores import topology
from tests.chaos.click_feed import ClickFeed
from tests.support import broker
from tests.support.broker import queue_depth
from tests.support.database import sql
from tests.support.stack import Stack

POLL_SECONDS = 0.5


@dataclass
class Outcome:
    """What a settled pipeline holds, compared with the feed."""

    settle_seconds: float  # from the call until everything was in place
    valid_clicks: int
    raw_rows: int
    lost_clicks: int  # in the feed, missing from agg
    double_counted_clicks: int  # in agg beyond the feed
    minutes: int
    dead_letters: int  # distinct
    dead_letter_repeats: int  # published again after a redelivery (allowed: at least once)


def minute_state(stack: Stack, minute: int) -> dict[str, Any]:
    """One minute's close bookkeeping and the revision agg holds for it (None: absent)."""
    rows = sql(stack, """
        SELECT c.attempts, c.started_revision, c.published_revision, t.revision
        FROM (SELECT CAST(:m AS timestamptz) AS minute) AS wanted
        LEFT JOIN agg.minute_closes c USING (minute)
        LEFT JOIN agg.minute_totals t USING (minute)""", m=_timestamp(minute))
    attempts, started, published, written = rows[0]
    return {"attempts": attempts, "started_revision": started,
            "published_revision": published, "written_revision": written}


def closes_summary(stack: Stack, minutes: list[int]) -> dict[str, Any]:
    """Close attempts of each minute (oldest first) and how many are unpublished."""
    rows = sql(stack, """
        SELECT attempts, started_revision IS DISTINCT FROM published_revision
        FROM agg.minute_closes WHERE minute = ANY(CAST(:ms AS timestamptz[])) ORDER BY minute""",
                ms=[_timestamp(m) for m in minutes])
    return {"attempts": [int(a) for a, _ in rows], "unpublished": sum(1 for _, u in rows if u)}


def settle_state(stack: Stack, feed: ClickFeed) -> dict[str, Any]:
    """Every condition of a settled pipeline, each True when met (or a count that is off)."""
    minutes = feed.minutes()
    raw_rows, outbox, late, watermark = sql(stack, """
        SELECT (SELECT count(*) FROM raw.ad_clicks), (SELECT count(*) FROM raw.redis_outbox),
               (SELECT count(*) FROM agg.late_minutes),
               (SELECT extract(epoch FROM closed_through)::bigint FROM agg.watermark)""")[0]
    unwritten = sql(stack, """
        SELECT extract(epoch FROM m)::bigint FROM unnest(CAST(:ms AS timestamptz[])) AS m
        LEFT JOIN agg.minute_closes c ON c.minute = m
        LEFT JOIN agg.minute_totals t ON t.minute = m
        WHERE c.published_revision IS NULL OR c.started_revision <> c.published_revision
           OR t.revision IS DISTINCT FROM c.published_revision""",
                     ms=[_timestamp(m) for m in minutes])
    return {
        "raw rows == valid clicks": raw_rows == feed.valid_clicks or raw_rows,
        "outbox empty": outbox == 0 or outbox,
        "no late minute pending": late == 0 or late,
        "watermark past the last minute": (watermark or 0) >= (minutes[-1] if minutes else 0),
        "every minute's latest revision written": not unwritten or len(unwritten),
        "ingest queue empty": queue_depth(stack, topology.INGEST_QUEUE) == 0,
        "aggregates queue empty": queue_depth(stack, topology.AGGREGATES_QUEUE) == 0,
        # At least: a dead letter is published again when its message is redelivered.
        "every dead letter in place": queue_depth(stack, topology.DEAD_QUEUE)
        >= sum(feed.invalid_codes.values()),
    }


def wait_settled(stack: Stack, feed: ClickFeed, timeout: float,
                 on_timeout: Callable[[], str] | None = None) -> float:
    """Wait until every settle condition holds; return the seconds it took."""
    started = time.monotonic()
    while True:
        state = settle_state(stack, feed)
        if all(value is True for value in state.values()):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            unmet = {name: value for name, value in state.items() if value is not True}
            raise AssertionError(
                f"the pipeline did not settle within {timeout:.0f} s; unmet: {unmet}\n"
                + (on_timeout() if on_timeout else ""))
        time.sleep(POLL_SECONDS)


def _timestamp(minute: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(minute))


def ranking(counts: dict[str, int], k: int) -> list[tuple[str, int]]:
    """The contract's order: clicks descending, then ad_id in code-point order."""
    return sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))[:k]


def dead_letters(stack: Stack) -> list[tuple[str, bytes]]:
    """(reason code, body) of every dead letter; the queue is left as it was."""
    letters: list[tuple[str, bytes]] = []
    for body, headers in broker.dead_letters(stack):
        # A letter RabbitMQ dead-lettered (a quorum queue's delivery limit) shows its
        # broker reason, "delivery_limit", in a failure rather than "None".
        letters.append((topology.dead_letter_reason(headers)[0], body))
    return letters


def assert_exact(stack: Stack, feed: ClickFeed, timeout: float = 180.0, *,
                 top_k: int = 10, on_timeout: Callable[[], str] | None = None) -> Outcome:
    """Wait until the pipeline settles, then check raw, agg, dead letters and the ledger.

    ``top_k`` must be the pipeline's FARLOOM_TOP_K; ``on_timeout`` adds context
    (say, ``pipeline.tails``) to a failure to settle.
    """
    # The truth counts what was taken for publishing; it is all confirmed only once
    # the publisher returned.
    assert feed.runs_in_progress == 0, "the feed is still publishing: wait() for it first"
    settle_seconds = wait_settled(stack, feed, timeout, on_timeout)
    expected = feed.expected

    # (a) exactly the valid ids <prefix>-0 .. <prefix>-(n-1), one row each (click_id is unique).
    rows, ours = sql(stack, """
        SELECT count(*), count(*) FILTER (
            WHERE click_id ~ ('^' || :prefix || '-[0-9]+$')
              AND substr(click_id, length(:prefix) + 2)::bigint < :n)
        FROM raw.ad_clicks""", prefix=feed.prefix, n=feed.valid_clicks)[0]
    assert (rows, ours) == (feed.valid_clicks, feed.valid_clicks), (
        f"raw has {rows} rows, {ours} of them feed ids; the feed sent {feed.valid_clicks}")
    raw = Counter({(int(m), ad): int(n) for m, ad, n in sql(stack, """
        SELECT extract(epoch FROM date_trunc('minute', clicked_at))::bigint, ad_id, count(*)
        FROM raw.ad_clicks GROUP BY 1, 2""")})
    assert raw == expected, f"raw has extra {raw - expected}, lacks {expected - raw}"

    # (b) agg, every minute.
    agg = Counter({(int(m), ad): int(n) for m, ad, n in sql(stack, """
        SELECT extract(epoch FROM minute)::bigint, ad_id, clicks
        FROM agg.ad_clicks_per_minute WHERE clicks <> 0""")})
    lost = sum((expected - agg).values())
    double = sum((agg - expected).values())
    assert agg == expected, (f"agg.ad_clicks_per_minute: {lost} clicks lost, {double} "
                             f"double-counted; extra {agg - expected}, lacks {expected - agg}")
    per_minute: dict[int, dict[str, int]] = {}
    for (minute, ad), n in expected.items():
        per_minute.setdefault(minute, {})[ad] = n
    totals = {int(m): (int(c), int(d), int(r), p) for m, c, d, r, p in sql(stack, """
        SELECT extract(epoch FROM t.minute)::bigint, t.clicks, t.distinct_ads, t.revision,
               c.published_revision
        FROM agg.minute_totals t LEFT JOIN agg.minute_closes c USING (minute)""")}
    for minute, ads in per_minute.items():
        clicks, distinct, revision, published = totals.get(minute, (None, None, None, None))
        assert (clicks, distinct) == (sum(ads.values()), len(ads)), (
            f"minute_totals of {_timestamp(minute)}: {clicks} clicks over {distinct} ads, "
            f"the feed sent {sum(ads.values())} over {len(ads)}")
        assert revision == published, (
            f"{_timestamp(minute)} holds revision {revision}, latest published {published}")
    extra_minutes = {m: c for m, (c, _, _, _) in totals.items() if m not in per_minute and c}
    assert not extra_minutes, f"minutes outside the feed have clicks: {extra_minutes}"
    top: dict[int, list[tuple[str, int]]] = {}
    for minute, ad, n in sql(stack, """
            SELECT extract(epoch FROM minute)::bigint, ad_id, clicks FROM agg.top_ads
            ORDER BY minute, rank"""):
        top.setdefault(int(minute), []).append((ad, int(n)))
    for minute in set(per_minute) | set(top):
        want = ranking(per_minute.get(minute, {}), top_k)
        assert top.get(minute, []) == want, (
            f"top_ads of {_timestamp(minute)}: {top.get(minute)}, expected {want}")

    # (c) the dead-letter queue: every invalid element, by reason, and no valid click.
    letters = dead_letters(stack)
    unique = set(letters)
    codes = Counter(code for code, _ in unique)
    assert codes == feed.invalid_codes, (
        f"dead letters by reason {dict(codes)}, the feed sent {dict(feed.invalid_codes)}")
    marker = f'"{feed.prefix}-'.encode()
    assert not [body for _, body in unique if marker in body], "a valid click was dead-lettered"

    # (d) the rejected-click ledger: every invalid element once, by reason, however many
    # times its message was delivered (the dead letters above may repeat).
    ledger = Counter({str(code): int(n) for code, n in sql(
        stack, "SELECT reason_code, count(*) FROM raw.rejected_clicks GROUP BY 1")})
    assert ledger == feed.invalid_codes, (
        f"raw.rejected_clicks by reason {dict(ledger)}, the feed sent "
        f"{dict(feed.invalid_codes)}")

    return Outcome(settle_seconds=round(settle_seconds, 1), valid_clicks=feed.valid_clicks,
                   raw_rows=int(rows), lost_clicks=lost, double_counted_clicks=double,
                   minutes=len(per_minute), dead_letters=len(unique),
                   dead_letter_repeats=len(letters) - len(unique))
