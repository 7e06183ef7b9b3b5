"""The ads catalog (agg.ads) as ingest fills it: owners learned once, contradictions rejected.

Every expected figure is computed from the test's own clicks; the system is only
read back (agg.ads, raw rows, the ledger, the dead-letter queue).
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections import Counter
from typing import Any

import psycopg2
import pytest

from farloom_tasks.core.ad_owners import MISMATCH, Owner
from farloom_tasks.core.clicks import Click
from farloom_tasks.core.windows import minute_of
from farloom_tasks.stores import topology
from farloom_tasks.stores.raw import RawStore
from tests.integration.ingest_support import (
    WAIT_SECONDS,
    dead_letter_ids,
    one_click_stream,
    postgresql_refusing,
    raw_counts,
    run_burst,
    run_bursts_side_by_side,
    worker,
)
from tests.integration.test_rejected_clicks import _publish_plain
from tests.support.broker import dead_letters, publish
from tests.support.database import sql
from tests.support.redis_view import redis_minute_counts
from tests.support.stack import Stack


def _catalog(stack: Stack) -> dict[str, Owner]:
    return {ad: Owner(campaign, advertiser) for ad, campaign, advertiser in sql(
        stack, "SELECT ad_id, campaign_id, advertiser_id FROM agg.ads")}


def _stored_ids(stack: Stack) -> set[str]:
    return {row[0] for row in sql(stack, "SELECT click_id FROM raw.ad_clicks")}


def _click(click_id: str, ad_id: str, now: float, campaign: str | None = None,
           advertiser: str | None = None) -> Click:
    return Click(click_id, ad_id, now - 5, campaign_id=campaign, advertiser_id=advertiser)


def test_clicks_give_every_ad_a_catalog_row_and_raw_keeps_their_new_fields(
        stack: Stack) -> None:
    now = time.time()
    clicks = [{"click_id": "a", "ad_id": "ad-1", "clicked_at": now - 3, "device": "Mobile",
               "campaign_id": "camp-1", "advertiser_id": "adv-1"},
              {"click_id": "b", "ad_id": "ad-2", "clicked_at": now - 3},
              {"click_id": "c", "ad_id": "ad-3", "clicked_at": now - 3, "campaign_id": "camp-3"},
              {"click_id": "d", "ad_id": "ad-3", "clicked_at": now - 2, "advertiser_id": "adv-9"}]
    publish(stack, [json.dumps(clicks).encode()])

    run_burst(stack)

    assert _catalog(stack) == {"ad-1": Owner("camp-1", "adv-1"), "ad-2": Owner(),
                               "ad-3": Owner("camp-3", "adv-9")}
    assert sorted(sql(stack, "SELECT click_id, device, campaign_id, advertiser_id "
                             "FROM raw.ad_clicks")) == [
        ("a", "mobile", "camp-1", "adv-1"), ("b", None, None, None),
        ("c", None, "camp-3", None), ("d", None, None, "adv-9")]
    [(first_seen_ok,)] = sql(stack, "SELECT bool_and(first_seen <= now()) FROM agg.ads")
    assert first_seen_ok


def test_a_click_contradicting_its_ads_owner_is_dead_lettered_and_ledgered_once(
        stack: Stack) -> None:
    now = time.time()
    stream = one_click_stream(20, now)
    owner = {"click_id": "owner", "ad_id": "ad-x", "clicked_at": now - 9,
             "campaign_id": "camp-1", "advertiser_id": "adv-1"}
    publish(stack, [json.dumps(owner).encode()])
    run_burst(stack)
    wrong = {"click_id": "wrong", "ad_id": "ad-x", "clicked_at": now - 4,
             "campaign_id": "camp-2", "advertiser_id": "adv-1"}
    mates = [json.loads(body) for body in stream.bodies]
    body = json.dumps([*mates[:10], wrong, *mates[10:]]).encode()
    # The same message twice (a publisher's retry): its mismatch is one ledger row.
    _publish_plain(stack, [body], message_id="retried")
    summary = run_burst(stack)
    _publish_plain(stack, [body], message_id="retried")
    run_burst(stack)

    assert _stored_ids(stack) == stream.click_ids | {"owner"}
    assert _catalog(stack)["ad-x"] == Owner("camp-1", "adv-1")
    [(source_id, index, code, reason, element)] = sql(
        stack, "SELECT source_id, element_index, reason_code, reason, element "
        "FROM raw.rejected_clicks")
    assert (index, code) == (-1, MISMATCH) and source_id.startswith("click-sha256:")
    assert json.loads(bytes(element))["click_id"] == "wrong"
    assert all(name in reason for name in ("'ad-x'", "'camp-1'", "'camp-2'"))
    letters = dead_letters(stack)
    assert [h[topology.REASON_CODE_HEADER] for _, h in letters] == [MISMATCH, MISMATCH]
    assert len(set(dead_letter_ids(stack))) == 1  # two deliveries, one id
    assert summary["dead_letters"] == 1
    assert sql(stack, "SELECT count(*) FROM raw.ad_clicks WHERE ad_id = 'ad-x'") == [(1,)]


def test_inside_one_batch_the_first_click_naming_an_owner_wins(stack: Stack) -> None:
    now = time.time()
    store = RawStore(stack.engine(), stack.settings.shard_count)
    try:
        batch = store.commit_batch([_click("k1", "ad-new", now, "camp-a"),
                                    _click("k2", "ad-new", now, "camp-b", "adv-b"),
                                    _click("k3", "ad-new", now, None, "adv-c"),
                                    _click("k4", "ad-new", now, "camp-a", "adv-d")])
    finally:
        store.close()

    assert batch.new_clicks == 2
    assert [json.loads(d.body)["click_id"] for d in batch.owner_mismatches] == ["k2", "k4"]
    assert batch.rejections_recorded == 2
    assert _catalog(stack) == {"ad-new": Owner("camp-a", "adv-c")}
    assert _stored_ids(stack) == {"k1", "k3"}


def test_a_worker_judges_known_owners_from_its_cache_and_learns_only_what_committed(
        stack: Stack) -> None:
    now = time.time()
    store = RawStore(stack.engine(), stack.settings.shard_count)
    try:
        with postgresql_refusing(stack, "ad-poison"), pytest.raises(psycopg2.IntegrityError):
            store.commit_batch([_click("p1", "ad-new", now, "camp-a", "adv-a"),
                                _click("p2", "ad-poison", now, "camp-p", "adv-p")])
        assert _catalog(stack) == {} and len(store.known_owners) == 0  # rolled back
        store.commit_batch([_click("q1", "ad-new", now, "camp-a", "adv-a")])
        assert store.known_owners.owners == {"ad-new": Owner("camp-a", "adv-a")}
        # Fixed by SQL: this worker's cache still holds the old owner, as documented.
        sql(stack, "UPDATE agg.ads SET campaign_id = 'camp-fixed' WHERE ad_id = 'ad-new'")
        cached = store.commit_batch([_click("q2", "ad-new", now, "camp-a")])
    finally:
        store.close()
    assert cached.new_clicks == 1 and not cached.owner_mismatches


def test_two_workers_racing_on_new_ads_end_with_one_owner_each_and_lose_no_click(
        stack: Stack) -> None:
    now = time.time()
    rng = random.Random(13)
    ads = [f"ad-{n}" for n in range(60)]
    batches: list[list[Click]] = []
    for writer in range(2):
        batch = []
        for n in range(300):
            ad = rng.choice(ads)
            batch.append(_click(f"w{writer}-{n:03d}", ad, now, rng.choice(
                [None, f"camp-{writer}", f"camp-{ad}"]), rng.choice([None, f"adv-{writer}"])))
        batches.append(batch)
    stores = [RawStore(stack.engine(), stack.settings.shard_count) for _ in batches]
    start = threading.Barrier(len(stores))
    results: list[object] = [None] * len(stores)

    def run(n: int) -> None:
        start.wait()
        results[n] = stores[n].commit_batch(batches[n])

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(stores))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        for store in stores:
            store.close()

    catalog = _catalog(stack)
    sent = [click for batch in batches for click in batch]
    assert set(catalog) == {click.ad_id for click in sent}
    # Owners only ever fill, so a click is stored exactly when it agrees with the end state.
    agreeing = {c.click_id for c in sent
                if not catalog[c.ad_id].contradicted_by(c.campaign_id, c.advertiser_id)}
    assert _stored_ids(stack) == agreeing
    assert None not in results  # both committed
    ledgered = sql(stack, "SELECT count(*), count(DISTINCT source_id) FROM raw.rejected_clicks "
                          "WHERE reason_code = :code", code=MISMATCH)
    assert ledgered == [(len(sent) - len(agreeing), len(sent) - len(agreeing))]
    assert len(sent) - len(agreeing) > 0  # the feed holds contradictions to reject
    for click in sent:  # every id a stored click named is the catalog's
        if click.click_id in agreeing and click.campaign_id is not None:
            assert catalog[click.ad_id].campaign_id == click.campaign_id


def _owner_feed(seed: int, clicks: int, now: float) -> tuple[list[bytes], list[dict[str, Any]]]:
    """Messages of 1-5 clicks over 30 new ads, each click naming one of two campaigns
    and one of two advertisers for its ad, or nothing: contradictions every few clicks."""
    rng = random.Random(seed)
    sent: list[dict[str, Any]] = []
    bodies: list[bytes] = []
    while len(sent) < clicks:
        message = []
        for _ in range(rng.randint(1, 5)):
            ad = f"ad-{rng.randrange(30)}"
            click: dict[str, Any] = {"click_id": f"k-{len(sent)}", "ad_id": ad,
                                     "clicked_at": round(now - rng.uniform(0, 300), 3)}
            if rng.random() < 0.7:
                click["campaign_id"] = f"camp-{ad}-{rng.randrange(2)}"
            if rng.random() < 0.5:
                click["advertiser_id"] = f"adv-{rng.randrange(2)}"
            message.append(click)
            sent.append(click)
        bodies.append(json.dumps(message).encode())
    return bodies, sent


def _assert_settled_exactly(stack: Stack, sent: list[dict[str, Any]]) -> None:
    """One row per ad; a click stored exactly when it agrees with its ad's final owner
    (owners only fill), counted once in raw and Redis; the others ledgered once each."""
    catalog = _catalog(stack)
    assert set(catalog) == {c["ad_id"] for c in sent}
    agreeing = [c for c in sent if not catalog[c["ad_id"]].contradicted_by(
        c.get("campaign_id"), c.get("advertiser_id"))]
    assert 0 < len(agreeing) < len(sent)
    assert _stored_ids(stack) == {c["click_id"] for c in agreeing}
    expected = Counter((minute_of(c["clicked_at"]), c["ad_id"]) for c in agreeing)
    assert raw_counts(stack) == expected and redis_minute_counts(stack) == expected
    rejected = sql(stack, "SELECT reason_code, count(*) FROM raw.rejected_clicks GROUP BY 1")
    assert rejected == [(MISMATCH, len(sent) - len(agreeing))]
    assert len(set(dead_letter_ids(stack))) == len(sent) - len(agreeing)


def test_two_ingest_workers_racing_on_new_ads_store_or_reject_every_click_once(
        stack: Stack) -> None:
    bodies, sent = _owner_feed(5, 1500, time.time())
    doubled = bodies * 2  # every message twice: both workers meet the same clicks
    random.Random(5).shuffle(doubled)
    publish(stack, doubled)

    assert run_bursts_side_by_side(stack, 2, batch_size=40) == [0, 0]

    _assert_settled_exactly(stack, sent)


@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
def test_a_worker_killed_at_a_crash_point_leaves_the_catalog_and_ledger_exact(
        stack: Stack, point: str) -> None:
    bodies, sent = _owner_feed(8, 400, time.time())
    publish(stack, bodies)

    with worker(stack, "--burst", failpoints=f"{point}:3", batch_size=10,
                prefetch_count=40) as crashing:
        crashing.wait(timeout=WAIT_SECONDS)
    assert crashing.returncode == -signal.SIGKILL
    run_burst(stack)

    _assert_settled_exactly(stack, sent)
