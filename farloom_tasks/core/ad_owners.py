"""Who owns an ad: the ads catalog's rule (docs/design.md, "The ads catalog"). Pure.

An ad belongs to one campaign and one advertiser. The catalog learns each
owner from the first click (or import row) that names it, and never changes a
known one: a click naming another campaign or advertiser for its ad is
rejected as ``ad_owner_mismatch``, and its batch mates are stored.

- Inside one batch the clicks are judged in the batch's order (the ingest
  batch is sorted by click id, core/batching.py): the first click naming an
  owner wins, and a later one naming another is rejected against it.
- Across workers the catalog's committed row decides: the store locks the
  rows in ad id order and hands ``judge`` what is committed, so the loser of
  a race on a new ad sees the winner's owner and rejects its own click.

``KnownOwners`` is the per-worker cache that keeps the hot path off the
catalog: an owner id once committed never changes, so a cached non-null id is
exact for ever and only a click naming an id the cache does not know yet, or
an ad the cache has never seen, needs the catalog.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson

from farloom_tasks.core.clicks import Click, Rejection
from farloom_tasks.core.message_identity import click_identity
from farloom_tasks.core.messages import DeadLetter

MISMATCH = "ad_owner_mismatch"
# Ads a worker's cache holds before it starts afresh: about 100 bytes each.
MAX_CACHED_ADS = 500_000


@dataclass(frozen=True, slots=True)
class Owner:
    """An ad's campaign and advertiser; None where nobody has named it yet."""

    campaign_id: str | None = None
    advertiser_id: str | None = None

    @property
    def complete(self) -> bool:
        return self.campaign_id is not None and self.advertiser_id is not None

    def contradicted_by(self, campaign_id: str | None, advertiser_id: str | None) -> bool:
        """Whether naming these ids contradicts this owner (None names nothing)."""
        return ((campaign_id is not None and self.campaign_id is not None
                 and campaign_id != self.campaign_id)
                or (advertiser_id is not None and self.advertiser_id is not None
                    and advertiser_id != self.advertiser_id))

    def filled_by(self, campaign_id: str | None, advertiser_id: str | None) -> Owner:
        """This owner with its unknown ids taken from those named (known ids stay)."""
        if ((campaign_id is None or self.campaign_id is not None)
                and (advertiser_id is None or self.advertiser_id is not None)):
            return self
        return Owner(self.campaign_id if self.campaign_id is not None else campaign_id,
                     self.advertiser_id if self.advertiser_id is not None else advertiser_id)

    def describe(self) -> str:
        return f"campaign {self.campaign_id!r}, advertiser {self.advertiser_id!r}"


NOBODY = Owner()


@dataclass(slots=True)
class Judgement:
    """A batch judged against the catalog."""

    accepted: list[Click] = field(default_factory=list)
    mismatched: list[tuple[Click, Owner]] = field(default_factory=list)  # with the owner met
    owners: dict[str, Owner] = field(default_factory=dict)  # each ad's owner after the batch


def judge(clicks: Sequence[Click], catalog: Mapping[str, Owner],
          cached: Mapping[str, Owner] | None = None) -> Judgement:
    """Judge ``clicks`` in order against ``catalog`` (ad id -> committed owner), then
    ``cached`` (KnownOwners.owners) for ads not in it; an ad in neither has no row yet.

    ``cached`` may only hold owners the clicks cannot fill (KnownOwners.ads_to_look_up
    sends every other ad to the catalog): those clicks are judged against it alone,
    the hot path, and their ads are left out of ``owners``, which holds the others.
    """
    judgement = Judgement()
    owners, accepted, mismatched = judgement.owners, judgement.accepted, judgement.mismatched
    cache = cached or {}
    for click in clicks:
        known = owners.get(click.ad_id)
        if known is None:
            known = catalog.get(click.ad_id)
        if known is None:
            known = cache.get(click.ad_id)
            if known is not None:
                if known.contradicted_by(click.campaign_id, click.advertiser_id):
                    mismatched.append((click, known))
                else:
                    accepted.append(click)
                continue
            known = NOBODY
        if known.contradicted_by(click.campaign_id, click.advertiser_id):
            mismatched.append((click, known))
            owners[click.ad_id] = known
            continue
        owners[click.ad_id] = known.filled_by(click.campaign_id, click.advertiser_id)
        accepted.append(click)
    return judgement


@dataclass(frozen=True, slots=True)
class Claim:
    """One row of an ads import: ``owner`` claimed for ``ad_id`` on line ``line``."""

    line: int
    ad_id: str
    owner: Owner


@dataclass(slots=True)
class ClaimSettlement:
    owners: dict[str, Owner] = field(default_factory=dict)  # each ad's owner after the rows
    contradictions: list[tuple[Claim, Owner]] = field(default_factory=list)  # with owner met


def settle_claims(claims: Sequence[Claim], catalog: Mapping[str, Owner]) -> ClaimSettlement:
    """``judge`` for import rows: in file order, the first row naming an id wins."""
    settled = ClaimSettlement()
    owners = settled.owners
    for claim in claims:
        known = owners.get(claim.ad_id) or catalog.get(claim.ad_id, NOBODY)
        wanted = claim.owner
        if known.contradicted_by(wanted.campaign_id, wanted.advertiser_id):
            settled.contradictions.append((claim, known))
            owners[claim.ad_id] = known
        else:
            owners[claim.ad_id] = known.filled_by(wanted.campaign_id, wanted.advertiser_id)
    return settled


def mismatch_detail(ad_id: str, known: Owner, campaign_id: str | None,
                    advertiser_id: str | None) -> str:
    return (f"ad {ad_id!r} belongs to {known.describe()} in the ads catalog; this click "
            f"names campaign {campaign_id!r}, advertiser {advertiser_id!r} (an ad's owner "
            "never changes; a wrong one is fixed in agg.ads by SQL, docs/design.md §2.6)")


def mismatch_letter(click: Click, known: Owner) -> DeadLetter:
    """The dead letter of a click contradicting its ad's owner.

    Known by its click id and event time, as a click PostgreSQL refused
    (core.message_identity.click_identity): a redelivery is ledgered once.
    """
    detail = mismatch_detail(click.ad_id, known, click.campaign_id, click.advertiser_id)
    return DeadLetter(orjson.dumps(dataclasses.asdict(click)), Rejection(MISMATCH, detail),
                      source_id=click_identity(click.click_id, click.clicked_at))


class KnownOwners:
    """A worker's cache of catalog rows it has seen committed (see the module docstring)."""

    def __init__(self, limit: int = MAX_CACHED_ADS) -> None:
        self.limit = limit
        self._owners: dict[str, Owner] = {}

    def __len__(self) -> int:
        return len(self._owners)

    @property
    def owners(self) -> Mapping[str, Owner]:
        return self._owners

    def ads_to_look_up(self, clicks: Iterable[Click]) -> set[str]:
        """The ads of ``clicks`` the cache cannot judge alone: never seen, or named
        with an id the cache does not know yet."""
        cached = self._owners
        wanted: set[str] = set()
        for click in clicks:
            known = cached.get(click.ad_id)
            if known is None or (
                    (click.campaign_id is not None and known.campaign_id is None)
                    or (click.advertiser_id is not None and known.advertiser_id is None)):
                wanted.add(click.ad_id)
        return wanted

    def learn(self, owners: Mapping[str, Owner]) -> None:
        """Remember owners the catalog holds committed (call only after the commit)."""
        if len(self._owners) + len(owners) > self.limit:
            self._owners.clear()  # simpler than LRU; a miss costs one catalog round trip
        self._owners.update(owners)
