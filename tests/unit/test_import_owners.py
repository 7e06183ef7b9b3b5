"""The import's owner look-ahead: file order decides, and the owners it writes first make
ingest dead-letter exactly the rows it counted, in whatever order ingest judges them."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from farloom_tasks.core.ad_owners import Claim, Owner, judge, settle_claims
from farloom_tasks.core.clicks import Click
from farloom_tasks.core.import_owners import OwnerPrescan, settled_owner

_ids = st.sampled_from([None, "c1", "c2"])
_rows = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), _ids, st.sampled_from(
    [None, "v1", "v2"])), max_size=40)
_catalog = st.dictionaries(st.sampled_from(["a", "b", "d"]), st.builds(Owner, _ids, _ids),
                           max_size=3)


def _claims(rows: list[tuple[str, str | None, str | None]]) -> list[Claim]:
    return [Claim(line, ad, Owner(campaign, advertiser))
            for line, (ad, campaign, advertiser) in enumerate(rows, start=2)]


def _prescan(claims: list[Claim], catalog: dict[str, Owner], chunk: int) -> OwnerPrescan:
    found = OwnerPrescan()
    for start in range(0, len(claims), chunk):
        part = claims[start:start + chunk]
        wanted = found.ads_to_look_up(part)
        found.judge(part, {ad: owner for ad, owner in catalog.items() if ad in wanted})
    return found


def test_the_first_row_naming_an_owner_wins_and_later_contradictions_are_counted() -> None:
    claims = _claims([("a", "c1", None), ("a", None, "v1"), ("a", "c2", None),
                      ("b", "c9", None), ("a", "c1", "v2"), ("b", "c9", "v9")])
    found = _prescan(claims, {"b": Owner("c3", None)}, chunk=2)
    assert found.owners == {"a": Owner("c1", "v1"), "b": Owner("c3", None)}
    assert (found.claims, found.conflicts, found.conflicting_ads) == (6, 4, {"a", "b"})
    assert found.examples[0] == ("line 4: ad 'a' belongs to campaign 'c1', advertiser 'v1'; "
                                 "this row names campaign 'c2', advertiser None")
    assert found.catalog_ads == {"b"}


@given(_rows, _catalog, st.integers(1, 7), st.randoms(use_true_random=False))
def test_once_the_owners_found_are_committed_any_order_of_judging_rejects_the_same_rows(
        rows: list[tuple[str, str | None, str | None]], catalog: dict[str, Owner],
        chunk: int, rng: random.Random) -> None:
    claims = _claims(rows)
    found = _prescan(claims, catalog, chunk)
    committed = {ad: settled_owner(catalog.get(ad), owner)
                 for ad, owner in found.new_owners().items()}
    clicks = [Click(str(claim.line), claim.ad_id, 0.0, campaign_id=claim.owner.campaign_id,
                    advertiser_id=claim.owner.advertiser_id) for claim in claims]
    rng.shuffle(clicks)
    judged = judge(clicks, committed)
    in_file_order = settle_claims(claims, catalog).contradictions
    assert len(judged.mismatched) == found.conflicts == len(in_file_order)
    assert {click.click_id for click, _ in judged.mismatched} == {
        str(claim.line) for claim, _ in in_file_order}
    assert all(judged.owners[ad] == committed[ad] for ad in judged.owners)


def test_an_owner_committed_meanwhile_keeps_its_ids_and_gains_only_unknown_ones() -> None:
    assert settled_owner(None, Owner("c1", None)) == Owner("c1", None)
    assert settled_owner(Owner(None, "v1"), Owner("c1", None)) == Owner("c1", "v1")
    assert settled_owner(Owner("c2", None), Owner("c1", "v1")) == Owner("c2", None)
