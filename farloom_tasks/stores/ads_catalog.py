"""The ads catalog, agg.ads (adapter; migration 0010): rows, locks and owner fills.

Both writers, the ingest transaction (stores/raw.py ``commit_batch``) and
``farloom ads import``, follow one protocol in the caller's transaction, which
is what makes two of them racing on a new ad end with one owner:

1. ``lock_owners`` inserts the ads without a row, in ad id order, with
   ``ON CONFLICT DO NOTHING``: an insert racing another transaction's
   uncommitted insert of the same ad waits for it, then skips it. It then
   locks every row, again in ad id order (``FOR UPDATE``), and reads the
   owners as committed, the winner's included.
2. The caller judges its claims against them (core/ad_owners.py).
3. ``fill_owners`` writes the ids that were unknown. It never overwrites one:
   the rows are locked, and the caller only fills what was None.

An ingest transaction runs this after the watermark lock, like every row lock
it takes, and before its raw inserts; both phases go in ad id order, so no two
writers can deadlock on the catalog.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from farloom_tasks.core.ad_owners import Owner

# The unnest keeps the caller's (sorted) order: the inserts take their index
# entries in ad id order.
_CREATE = """
INSERT INTO agg.ads (ad_id, campaign_id, advertiser_id)
SELECT a, c, v FROM unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY AS x(a, c, v, n)
ORDER BY n
ON CONFLICT (ad_id) DO NOTHING
RETURNING ad_id
"""

_LOCK = """
SELECT ad_id, campaign_id, advertiser_id FROM agg.ads
WHERE ad_id = ANY(%s::text[])
ORDER BY ad_id
FOR UPDATE
"""

_FILL = """
UPDATE agg.ads AS a SET campaign_id = x.c, advertiser_id = x.v
FROM unnest(%s::text[], %s::text[], %s::text[]) AS x(a, c, v)
WHERE a.ad_id = x.a
"""


@dataclass(frozen=True)
class Locked:
    owners: dict[str, Owner]  # each ad's owner as the catalog now holds it
    created: frozenset[str]  # the ads this transaction gave a row


def lock_owners(cursor: Any, proposed: Mapping[str, Owner]) -> Locked:
    """Give each ad of ``proposed`` a row (a new row gets its proposed owner) and lock
    them all, in ad id order (see the module docstring)."""
    if not proposed:
        return Locked({}, frozenset())
    ads = sorted(proposed)
    cursor.execute(_CREATE, (ads, [proposed[a].campaign_id for a in ads],
                             [proposed[a].advertiser_id for a in ads]))
    created = frozenset(str(row[0]) for row in cursor.fetchall())
    cursor.execute(_LOCK, (ads,))
    return Locked({str(ad): Owner(campaign, advertiser)
                   for ad, campaign, advertiser in cursor.fetchall()}, created)


def owners_of(cursor: Any, ads: list[str]) -> dict[str, Owner]:
    """The committed owners of those of ``ads`` with a row, read without locking
    (``farloom import``'s look-ahead, pipeline/import_owners.py)."""
    if not ads:
        return {}
    cursor.execute("SELECT ad_id, campaign_id, advertiser_id FROM agg.ads "
                   "WHERE ad_id = ANY(%s::text[])", (ads,))
    return {str(ad): Owner(campaign, advertiser) for ad, campaign, advertiser in cursor.fetchall()}


def fill_owners(cursor: Any, locked: Mapping[str, Owner], settled: Mapping[str, Owner]) -> int:
    """Write the owners of ``settled`` that differ from ``locked`` (rows ``lock_owners``
    locked, which the caller only ever fills); returns the rows changed."""
    changed = sorted(ad for ad, owner in settled.items() if locked.get(ad) != owner)
    if not changed:
        return 0
    cursor.execute(_FILL, (changed, [settled[a].campaign_id for a in changed],
                           [settled[a].advertiser_id for a in changed]))
    return int(cursor.rowcount)
