"""When the heads of ranked lists settle an exact top n (pure).

A window is tiled into edge minutes and built hours and days (core.tiling), and
every tile's rows can be read in rank order, clicks descending: a slice's minute row
holds every ad of its value ranked (migration 0012), and a built period's rollup
rows have an index in that order (migration 0013). So an ad beyond the first
``depth`` of a tile has at most the clicks of the tile's ad at ``depth + 1`` (0 when
it has no more): that tile's *bound*. Summing only the heads of a window's tiles
gives each ad a *partial* sum and a *missing* bound, the sum of the bounds of the
tiles whose head it is not in; its true clicks lie in ``[partial, partial +
missing]``, and an ad in no head at all has at most the sum of every tile's bound
(*unseen*). Whether a tile is a minute, an hour or a day does not matter here.

The top n by partial is the exact top n when each of its ads is complete (missing 0)
and every other ad is known to fall strictly below the n-th: an incomplete one by
its upper bound, an unseen one by the unseen bound. A complete ad outside it is
ranked as it would be anyway (its partial is its clicks). Strictly, because an ad
tying the n-th could rank before it by ad id. Otherwise the caller reads deeper, or
everything (stores/slice_reads.py); the answer never depends on which (design §2.10).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Head:
    ad_id: str
    partial: int  # clicks summed from the heads and the complete rows
    missing: int  # the most the ad can have beyond them


def settled(top: Sequence[Head], n: int, *, other_upper: int | None, unseen: int) -> bool:
    """Whether ``top`` (the first n by partial, ranked) is the exact top n.

    ``other_upper`` is the largest ``partial + missing`` of the incomplete ads
    outside ``top`` (None: there are none); ``unseen`` the most an ad in no head has.
    """
    if any(head.missing for head in top):
        return False
    if len(top) < n:  # every candidate is in; none may be beyond the heads
        return unseen == 0
    floor = top[-1].partial
    return unseen < floor and (other_upper is None or other_upper < floor)
