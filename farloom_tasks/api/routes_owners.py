"""Per-campaign and per-advertiser clicks, and an advertiser's top ads, from slices.

``GET /v1/campaigns/{campaign_id}/clicks`` and ``GET /v1/advertisers/{advertiser_id}/
clicks`` list the owner's clicks per minute, hour or day of the ``campaign`` or
``advertiser`` slice (stores/slice_reads.py: minute rows, or the slice's totals
rollups), 0 in a period closed for the slice without the owner, and their total;
``GET /v1/advertisers/{advertiser_id}/ads/top`` ranks the advertiser's ads over a
window tiled as every top's is (whole days and hours from the rollups). Ranges and
windows are those of the other endpoints (api/query_windows.py).

Scoping (docs/design.md §2.10): an owner the catalog ``agg.ads`` does not know is a
404; to an advertiser's key, so is every advertiser but its own and every campaign
without one of its ads, with the same body as an unknown one, so ids do not leak.
A campaign's clicks, to an advertiser's key, are those of its own ads in it.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, HTTPException

from farloom_tasks.api import openapi_contract as contract
from farloom_tasks.api import response_bodies as bodies
from farloom_tasks.api.auth import Authenticated
from farloom_tasks.api.query_windows import (
    GRAINS,
    At,
    From,
    Granularity,
    To,
    TopN,
    WindowFrom,
    WindowMinutes,
    WindowTo,
    id_param,
    series_range,
    top_window,
)
from farloom_tasks.core.api_keys import Caller
from farloom_tasks.core.tiling import units_per_grain
from farloom_tasks.core.windows import MINUTE, iso
from farloom_tasks.stores import db, slice_reads

if TYPE_CHECKING:
    import sqlalchemy as sa

Owner = Literal["campaign", "advertiser"]


def _advertiser_or_404(conn: sa.Connection, caller: Caller, advertiser_id: str) -> None:
    visible = (advertiser_id == caller.advertiser_id if caller.advertiser_id is not None
               else slice_reads.advertiser_known(conn, advertiser_id))
    if not visible:
        raise HTTPException(404, f"no advertiser {advertiser_id!r} among this key's")


def _owner_or_404(conn: sa.Connection, caller: Caller, owner: Owner, owner_id: str) -> None:
    if owner == "advertiser":
        _advertiser_or_404(conn, caller, owner_id)
    elif not slice_reads.campaign_known(conn, owner_id, caller.advertiser_id):
        raise HTTPException(404, f"no campaign {owner_id!r} among this key's")


def router(engine: db.Engine) -> APIRouter:
    routes = APIRouter()

    def owner_clicks(owner: Owner, owner_id: str, caller: Caller, first_text: str | None,
                     last_text: str | None, granularity: str) -> dict[str, Any]:
        """One owner's clicks per period of its slice (the slice is named as the owner).

        An advertiser's value holds only that advertiser's ads, so its key (which sees
        no other advertiser) needs no restriction; a campaign's, to an advertiser's
        key, counts only the key's own ads in it."""
        id_param(owner_id, f"{owner}_id")
        grain = GRAINS[granularity]
        restrict = caller.advertiser_id if owner == "campaign" else None
        with engine.connect() as conn:
            _owner_or_404(conn, caller, owner, owner_id)
            first, last = series_range(conn, grain, first_text, last_text, partial(
                slice_reads.last_closed_minute, slice_name=owner))
            points = (slice_reads.value_clicks(conn, owner, owner_id, first=first, last=last,
                                               advertiser=restrict)
                      if grain == MINUTE
                      else slice_reads.value_clicks_rolled_up(
                          conn, owner, owner_id, grain, first=first, last=last,
                          advertiser=restrict))
        return {f"{owner}_id": owner_id, "from": iso(first), "to": iso(last),
                "granularity": granularity, "total": sum(p["clicks"] for p in points),
                f"{granularity}s": points}

    @routes.get("/v1/campaigns/{campaign_id:path}/clicks",
                summary="One campaign's clicks per closed minute, hour or day, and total",
                responses=contract.answers(bodies.CampaignClicks, 400, 401, 404, 503))
    def campaign_clicks(campaign_id: Annotated[str, contract.owner_id_path("campaign")],
                        caller: Authenticated, first_text: From = None,
                        last_text: To = None,
                        granularity: Granularity = "minute") -> dict[str, Any]:
        return owner_clicks("campaign", campaign_id, caller, first_text, last_text,
                            granularity)

    @routes.get("/v1/advertisers/{advertiser_id:path}/clicks",
                summary="One advertiser's clicks per closed minute, hour or day, and total",
                responses=contract.answers(bodies.AdvertiserClicks, 400, 401, 404, 503))
    def advertiser_clicks(advertiser_id: Annotated[str, contract.owner_id_path("advertiser")],
                          caller: Authenticated, first_text: From = None,
                          last_text: To = None,
                          granularity: Granularity = "minute") -> dict[str, Any]:
        return owner_clicks("advertiser", advertiser_id, caller, first_text, last_text,
                            granularity)

    @routes.get("/v1/advertisers/{advertiser_id:path}/ads/top",
                summary="Exact top N of one advertiser's ads over a window",
                responses=contract.answers(bodies.AdvertiserTopAds, 400, 401, 404, 503))
    def advertiser_top(advertiser_id: Annotated[str, contract.owner_id_path("advertiser")],
                       caller: Authenticated, n: TopN = 100, minutes: WindowMinutes = None,
                       at: At = None, first_text: WindowFrom = None,
                       last_text: WindowTo = None) -> dict[str, Any]:
        id_param(advertiser_id, "advertiser_id")
        with engine.connect() as conn:
            _advertiser_or_404(conn, caller, advertiser_id)
            first, last = top_window(
                conn, minutes, at, first_text, last_text,
                last_closed=partial(slice_reads.last_closed_minute, slice_name="advertiser"))
            runs = slice_reads.built_tiling(conn, "advertiser", first, last + MINUTE)
            # The value is the ads' owner, so every ad in it is the advertiser's own.
            ranked = slice_reads.top_ads_tiled(conn, "advertiser", advertiser_id, runs, n=n,
                                               advertiser=None)
        return {"advertiser_id": advertiser_id, "from": iso(first), "to": iso(last),
                "minutes": (last - first) // MINUTE + 1, "n": n,
                "ads": [{"rank": ad.rank, "ad_id": ad.ad_id, "clicks": ad.clicks}
                        for ad in ranked],
                "read": units_per_grain(runs)}

    return routes
