"""A click import's ad owners: found in the catalog, judged, written before publishing.

The adapter of core/import_owners.py. ``prescan`` reads the committed owners
of the file's ads from ``agg.ads`` (CHUNK_ROWS claims at a time, read-only)
and judges the rows in file order. ``settle`` writes the owners found into
the catalog through its locking protocol (stores/ads_catalog.py), in
transactions of CHUNK_ROWS ads, so that ingest judges every click of the
import against an owner already committed: which row of an ad wins is the
file's first, not whichever message ingest happens to read first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice

from farloom_tasks.core.ad_owners import Claim
from farloom_tasks.core.import_owners import OwnerPrescan, settled_owner
from farloom_tasks.stores import ads_catalog
from farloom_tasks.stores.db import Engine
from farloom_tasks.stores.transactions import transaction

CHUNK_ROWS = 5000  # claims judged, or ads written, per round trip / transaction


def prescan(engine: Engine, claims: Iterable[Claim],
            progress: Callable[[int], object] = lambda rows: None) -> OwnerPrescan:
    """Judge ``claims`` (in file order) against the catalog; ``progress(n)`` per chunk."""
    found = OwnerPrescan()
    iterator = iter(claims)
    while chunk := list(islice(iterator, CHUNK_ROWS)):
        wanted = found.ads_to_look_up(chunk)
        with transaction(engine) as cursor:
            committed = ads_catalog.owners_of(cursor, sorted(wanted))
        found.judge(chunk, committed)
        progress(len(chunk))
    return found


def settle(engine: Engine, found: OwnerPrescan) -> int:
    """Write ``found``'s owners into agg.ads; returns the ads whose row was made or filled."""
    owners = found.new_owners()
    ads = sorted(owners)
    changed = 0
    for start in range(0, len(ads), CHUNK_ROWS):
        proposed = {ad: owners[ad] for ad in ads[start:start + CHUNK_ROWS]}
        with transaction(engine) as cursor:
            locked = ads_catalog.lock_owners(cursor, proposed)
            settled = {ad: settled_owner(locked.owners.get(ad), wanted)
                       for ad, wanted in proposed.items()}
            changed += len(locked.created) + ads_catalog.fill_owners(
                cursor, locked.owners, settled)
    return changed
