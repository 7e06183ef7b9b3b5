"""Per-campaign and per-advertiser clicks, and an advertiser's top ads, from slices.

``GET /v1/campaigns/{campaign_id}/clicks`` and ``GET /v1/advertisers/{advertiser_id}/
clicks`` list the clicks per minute of the ``campaign`` or ``advertiser`` slice
(stores/slice_reads.py), 0 in a minute closed for the slice without the owner, and
their total; ``GET /v1/advertisers/{advertiser_id}/ads/top`` ranks the advertiser's
ads over a window of a day at most. Ranges and windows are those of the other
endpoints (api/query_windows.py).

Scoping (docs/design.md §2.10): an owner the catalog ``agg.ads`` does not know is a
404; to an advertiser's key, so is every advertiser but its own and every campaign
without one of its ads, with the same body as an unknown one, so ids do not leak.
A campaign's clicks, to an advertiser's key, are those of its own ads in it.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from farloom_tasks.api import openapi_contract as contract
from farloom_tasks.api import response_bodies as bodies
from farloom_tasks.api.auth import Authenticated
from farloom_tasks.api.query_windows import (
    MAX_FILTERED_WINDOW_MINUTES,
    From,
    To,
    bounded_range,
    id_param,
    top_window,
)
from farloom_tasks.core.api_keys import Caller
from farloom_tasks.core.windows import MINUTE, iso
from farloom_tasks.stores import db, slice_reads

if TYPE_CHECKING:
    import sqlalchemy as sa

MAX_TOP_N = 1000


def _advertiser_or_404(conn: sa.Connection, caller: Caller, advertiser_id: str) -> None:
    visible = (advertiser_id == caller.advertiser_id if caller.advertiser_id is not None
               else slice_reads.advertiser_known(conn, advertiser_id))
    if not visible:
        raise HTTPException(404, f"no advertiser {advertiser_id!r} among this key's")


def router(engine: db.Engine) -> APIRouter:
    routes = APIRouter()

    @routes.get("/v1/campaigns/{campaign_id:path}/clicks",
                summary="One campaign's clicks per closed minute, and total",
                responses=contract.answers(bodies.CampaignClicks, 400, 401, 404, 503))
    def campaign_clicks(campaign_id: Annotated[str, contract.owner_id_path("campaign")],
                        caller: Authenticated, first_text: From = None,
                        last_text: To = None) -> dict[str, Any]:
        id_param(campaign_id, "campaign_id")
        with engine.connect() as conn:
            if not slice_reads.campaign_known(conn, campaign_id, caller.advertiser_id):
                raise HTTPException(404, f"no campaign {campaign_id!r} among this key's")
            first, last = bounded_range(conn, first_text, last_text, partial(
                slice_reads.last_closed_minute, slice_name="campaign"))
            points = slice_reads.value_clicks(conn, "campaign", campaign_id, first=first,
                                              last=last, advertiser=caller.advertiser_id)
        return {"campaign_id": campaign_id, "from": iso(first), "to": iso(last),
                "total": sum(p["clicks"] for p in points), "minutes": points}

    @routes.get("/v1/advertisers/{advertiser_id:path}/clicks",
                summary="One advertiser's clicks per closed minute, and total",
                responses=contract.answers(bodies.AdvertiserClicks, 400, 401, 404, 503))
    def advertiser_clicks(advertiser_id: Annotated[str, contract.owner_id_path("advertiser")],
                          caller: Authenticated, first_text: From = None,
                          last_text: To = None) -> dict[str, Any]:
        id_param(advertiser_id, "advertiser_id")
        with engine.connect() as conn:
            _advertiser_or_404(conn, caller, advertiser_id)
            first, last = bounded_range(conn, first_text, last_text, partial(
                slice_reads.last_closed_minute, slice_name="advertiser"))
            # The value is the ads' owner, so every ad in it is the advertiser's own.
            points = slice_reads.value_clicks(conn, "advertiser", advertiser_id, first=first,
                                              last=last, advertiser=None)
        return {"advertiser_id": advertiser_id, "from": iso(first), "to": iso(last),
                "total": sum(p["clicks"] for p in points), "minutes": points}

    @routes.get("/v1/advertisers/{advertiser_id:path}/ads/top",
                summary="Exact top N of one advertiser's ads over a window (a day at most)",
                responses=contract.answers(bodies.AdvertiserTopAds, 400, 401, 404, 503))
    def advertiser_top(advertiser_id: Annotated[str, contract.owner_id_path("advertiser")],
                       caller: Authenticated,
                       n: Annotated[int, Query(ge=1, le=MAX_TOP_N)] = 100,
                       minutes: Annotated[int | None, Query(
                           ge=1, le=MAX_FILTERED_WINDOW_MINUTES,
                           description="window length (default 60)")] = None,
                       at: Annotated[str | None, contract.time_query(
                           "at", "last minute; default: last closed")] = None,
                       first_text: Annotated[str | None, contract.time_query(
                           "from", "first minute (inclusive), instead of minutes")] = None,
                       last_text: Annotated[str | None, contract.time_query(
                           "to", "last minute (inclusive); default: last closed")] = None,
                       ) -> dict[str, Any]:
        id_param(advertiser_id, "advertiser_id")
        with engine.connect() as conn:
            _advertiser_or_404(conn, caller, advertiser_id)
            first, last = top_window(
                conn, minutes, at, first_text, last_text, limit=MAX_FILTERED_WINDOW_MINUTES,
                last_closed=partial(slice_reads.last_closed_minute, slice_name="advertiser"))
            ranked = slice_reads.top_ads(conn, "advertiser", advertiser_id, first=first,
                                         last=last, n=n, advertiser=None)
        return {"advertiser_id": advertiser_id, "from": iso(first), "to": iso(last),
                "minutes": (last - first) // MINUTE + 1, "n": n,
                "ads": [{"rank": ad.rank, "ad_id": ad.ad_id, "clicks": ad.clicks}
                        for ad in ranked]}

    return routes
