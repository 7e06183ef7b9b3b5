"""A click import's owner conflicts, known before anything is published. Pure.

The ads catalog's rule (core/ad_owners.py; docs/design.md, "The ads catalog")
meets real files: the TalkingData sample, imported with ``app`` as the
campaign and ``channel`` as the ad, names several campaigns for 86 of its 161
channels. The rule stays: an ad has one owner, and a click contradicting it
is dead-lettered as ``ad_owner_mismatch``. What this module adds is that an
import knows, before it publishes, which rows those will be, and that the
answer is the file's order rather than the broker's:

- ``OwnerPrescan`` judges the rows' claims in file order against what the
  catalog already holds (``settle_claims``, the rule ``farloom ads import``
  uses): the first row naming an ad's campaign or advertiser wins, and a later
  row naming another is a conflict.
- The import then writes those owners into the catalog before it publishes
  (pipeline/import_owners.py). Every click is thereby judged against a
  committed owner, whatever order its message arrives in, however the ingest
  worker batches it and however many workers there are: the dead-lettered
  rows are exactly the conflicts found here. That is provable from the rule:
  an owner's ids are only ever filled, so a row that agreed with the owner at
  its place in the file agrees with the final one, and one that contradicted
  it contradicts the final one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from farloom_tasks.core.ad_owners import Claim, Owner, settle_claims

EXAMPLES = 5  # conflicting rows quoted in the warning


@dataclass
class OwnerPrescan:
    """The claims of an import's rows judged in file order, fed a chunk at a time."""

    owners: dict[str, Owner] = field(default_factory=dict)  # each ad's owner so far
    claims: int = 0  # rows naming a campaign or advertiser
    conflicts: int = 0  # rows that will be dead-lettered as ad_owner_mismatch
    conflicting_ads: set[str] = field(default_factory=set)
    examples: list[str] = field(default_factory=list)
    catalog_ads: set[str] = field(default_factory=set)  # ads the catalog already had

    def ads_to_look_up(self, claims: Iterable[Claim]) -> set[str]:
        """The ads of ``claims`` not judged yet: their catalog rows are wanted first."""
        return {claim.ad_id for claim in claims} - self.owners.keys()

    def judge(self, claims: Sequence[Claim], catalog: Mapping[str, Owner]) -> None:
        """Judge the next ``claims`` (in file order); ``catalog`` holds the committed
        owners of ``ads_to_look_up(claims)`` that have a row."""
        self.owners.update(catalog)
        self.catalog_ads.update(catalog)
        settled = settle_claims(claims, self.owners)
        self.owners.update(settled.owners)
        self.claims += len(claims)
        self.conflicts += len(settled.contradictions)
        for claim, known in settled.contradictions:
            self.conflicting_ads.add(claim.ad_id)
            if len(self.examples) < EXAMPLES:
                self.examples.append(
                    f"line {claim.line}: ad {claim.ad_id!r} belongs to {known.describe()}; "
                    f"this row names {claim.owner.describe()}")

    def new_owners(self) -> dict[str, Owner]:
        """The owners the catalog should hold once the import is settled."""
        return dict(self.owners)


def settled_owner(committed: Owner | None, wanted: Owner) -> Owner:
    """What the catalog row becomes when the import writes ``wanted`` over ``committed``
    (a row another writer filled meanwhile keeps its ids: owners are only filled)."""
    if committed is None:
        return wanted
    if committed.contradicted_by(wanted.campaign_id, wanted.advertiser_id):
        return committed
    return committed.filled_by(wanted.campaign_id, wanted.advertiser_id)
