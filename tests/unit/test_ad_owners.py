"""An ad's owner, judged: the first to name an id wins, a contradiction is refused, and the
cache of known owners sends only what it cannot judge to the catalog."""

from __future__ import annotations

import json

from farloom_tasks.core.ad_owners import (
    MISMATCH,
    NOBODY,
    Claim,
    KnownOwners,
    Owner,
    judge,
    mismatch_letter,
    settle_claims,
)
from farloom_tasks.core.clicks import Click
from farloom_tasks.core.message_identity import click_identity


def _click(click_id: str, ad_id: str, campaign: str | None = None,
           advertiser: str | None = None) -> Click:
    return Click(click_id, ad_id, 100.0, campaign_id=campaign, advertiser_id=advertiser)


def test_naming_nothing_or_the_same_ids_never_contradicts() -> None:
    owner = Owner("c", "a")
    assert not owner.contradicted_by(None, None)
    assert not owner.contradicted_by("c", None) and not owner.contradicted_by("c", "a")
    assert not NOBODY.contradicted_by("x", "y")


def test_a_known_id_contradicted_on_either_side_is_a_contradiction() -> None:
    assert Owner("c", None).contradicted_by("d", None)
    assert Owner(None, "a").contradicted_by(None, "b")
    assert not Owner("c", None).contradicted_by(None, "b")  # unknown advertiser: a fill


def test_filling_keeps_known_ids_and_takes_unknown_ones() -> None:
    assert Owner("c", None).filled_by("other", "a") == Owner("c", "a")
    assert NOBODY.filled_by(None, "a") == Owner(None, "a")
    owner = Owner("c", "a")
    assert owner.filled_by("c", None) is owner


def test_in_a_batch_the_first_click_naming_an_id_wins_and_later_ones_are_judged_by_it() -> None:
    clicks = [_click("1", "ad", "c1"), _click("2", "ad", "c2", "a2"), _click("3", "ad", None, "a3"),
              _click("4", "ad", "c1", "a4"), _click("5", "other")]
    judgement = judge(clicks, {})
    assert [c.click_id for c in judgement.accepted] == ["1", "3", "5"]
    assert [(c.click_id, known) for c, known in judgement.mismatched] == [
        ("2", Owner("c1", None)), ("4", Owner("c1", "a3"))]
    assert judgement.owners == {"ad": Owner("c1", "a3"), "other": NOBODY}


def test_the_catalog_comes_before_the_cache_and_the_cache_before_nothing() -> None:
    clicks = [_click("1", "a", "new"), _click("2", "b", "new"), _click("3", "c", "new")]
    judgement = judge(clicks, {"a": Owner("committed", None)},
                      {"a": Owner(None, None), "b": Owner("cached", "x")})
    assert [c.click_id for c, _ in judgement.mismatched] == ["1", "2"]
    assert judgement.owners["c"] == Owner("new", None)


def test_a_mismatch_letter_names_the_ad_both_owners_and_the_click_identity() -> None:
    click = _click("k", "ad-7", "c2", "a1")
    letter = mismatch_letter(click, Owner("c1", "a1"))
    assert letter.rejection.code == MISMATCH
    assert all(text in letter.rejection.detail for text in ("'ad-7'", "'c1'", "'c2'"))
    assert letter.source_id == click_identity("k", 100.0) and letter.element_index is None
    assert json.loads(letter.body)["campaign_id"] == "c2"


def test_the_cache_sends_unseen_ads_and_unknown_ids_to_the_catalog_only() -> None:
    known = KnownOwners()
    known.learn({"full": Owner("c", "a"), "partial": Owner("c", None), "bare": NOBODY})
    clicks = [_click("1", "full", "other", "a"), _click("2", "partial", "c"),
              _click("3", "partial", None, "a"), _click("4", "bare"), _click("5", "unseen")]
    assert known.ads_to_look_up(clicks) == {"partial", "unseen"}


def test_a_full_cache_starts_afresh_rather_than_growing() -> None:
    known = KnownOwners(limit=3)
    known.learn({"a": NOBODY, "b": NOBODY})
    known.learn({"c": NOBODY, "d": NOBODY})
    assert set(known.owners) == {"c", "d"}


def test_import_rows_settle_like_clicks_in_file_order() -> None:
    claims = [Claim(2, "ad", Owner("c1", None)), Claim(3, "ad", Owner("c2", "a")),
              Claim(4, "ad", Owner(None, "a")), Claim(5, "known", Owner("x", "y"))]
    settled = settle_claims(claims, {"known": Owner("x", "z")})
    assert settled.owners == {"ad": Owner("c1", "a"), "known": Owner("x", "z")}
    assert [(c.line, known) for c, known in settled.contradictions] == [
        (3, Owner("c1", None)), (5, Owner("x", "z"))]
