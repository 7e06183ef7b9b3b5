"""``GET /v1/ads/top`` and ``GET /v1/ads/{ad_id}/clicks``, with or without a filter.

Unfiltered, they read the per-ad counts and their rollups (stores/agg_reads.py, or
stores/advertiser_reads.py for an advertiser's key). A filter (core.slice_filters)
reads its slice instead (stores/slice_reads.py) with the same windows and bounds,
a custom dimension's (``dimension=os:13``) as a built-in one's: the top tiles its
window as the unfiltered one does (whole days and hours from the slice's rollups,
edge minutes from its minute rows), and the series is per minute, hour or day
(docs/design.md §2.10, "Filters"). An advertiser's key counts its own ads only,
whatever the filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, HTTPException, Query

from farloom_tasks.api import openapi_contract as contract
from farloom_tasks.api import response_bodies as bodies
from farloom_tasks.api.auth import Authenticated
from farloom_tasks.api.query_windows import (
    GRAINS,
    MAX_TREND_MINUTES,
    At,
    BadRequest,
    DimensionFilters,
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
from farloom_tasks.core import slice_filters
from farloom_tasks.core.dimensions import Slice
from farloom_tasks.core.tiling import tile, units_per_grain
from farloom_tasks.core.windows import MINUTE, iso
from farloom_tasks.stores import advertiser_reads, agg_reads, db, slice_reads


def filter_params(
        country: Annotated[str | None, contract.filter_query("country")] = None,
        device: Annotated[str | None, contract.filter_query("device")] = None,
        campaign_id: Annotated[str | None, contract.filter_query("campaign_id")] = None,
        advertiser_id: Annotated[str | None, contract.filter_query("advertiser_id")] = None,
) -> dict[str, str | None]:
    return {"country": country, "device": device, "campaign_id": campaign_id,
            "advertiser_id": advertiser_id}


Filters = Annotated[dict[str, str | None], Depends(filter_params)]


def selection(filters: dict[str, str | None], dimension: list[str] | None,
              configured: Sequence[Slice]) -> slice_filters.Selection | None:
    try:
        return slice_filters.select(filters, configured, dimension or ())
    except slice_filters.FilterError as exc:
        raise BadRequest(str(exc), cast(bodies.Reason, exc.reason)) from None


def router(engine: db.Engine, configured: Sequence[Slice]) -> APIRouter:
    routes = APIRouter()

    @routes.get("/v1/ads/top",
                summary="Exact top N ads over the M minutes ending at `at`, or from `from` "
                        "to `to`; optionally within a slice's value (a filter)",
                responses=contract.answers(bodies.TopAds, 400, 401, 404, 503))
    def top(filters: Filters, dimension: DimensionFilters = None, n: TopN = 100,
            minutes: WindowMinutes = None, at: At = None, first_text: WindowFrom = None,
            last_text: WindowTo = None,
            trend: Annotated[int, Query(ge=0, le=MAX_TREND_MINUTES,
                                        description="minutes of per-ad trend to include")]
            = 0, *, caller: Authenticated) -> dict[str, Any]:
        chosen = selection(filters, dimension, configured)
        with engine.connect() as conn:
            if chosen is None:
                first, last = top_window(conn, minutes, at, first_text, last_text)
                runs = tile(first, last + MINUTE)
                ranked = (agg_reads.top_ads_tiled(conn, runs, n=n)
                          if caller.advertiser_id is None
                          else advertiser_reads.top_ads_tiled(conn, caller.advertiser_id, runs,
                                                              n=n))
            else:
                first, last = top_window(conn, minutes, at, first_text, last_text,
                                         last_closed=partial(slice_reads.last_closed_minute,
                                                             slice_name=chosen.slice))
                runs = slice_reads.built_tiling(conn, chosen.slice, first, last + MINUTE)
                ranked = slice_reads.top_ads_tiled(conn, chosen.slice, chosen.value, runs, n=n,
                                                   advertiser=caller.advertiser_id)
            series: dict[str, list[int]] = {}
            if trend:
                trend_first, ids = last - (trend - 1) * MINUTE, [ad.ad_id for ad in ranked]
                series = (agg_reads.trends(conn, ids, first=trend_first, last=last)
                          if chosen is None
                          else slice_reads.trends(conn, chosen.slice, chosen.value, ids,
                                                  first=trend_first, last=last))
        read = units_per_grain(runs)
        ads: list[dict[str, Any]] = []
        for ad in ranked:
            doc: dict[str, Any] = {"rank": ad.rank, "ad_id": ad.ad_id, "clicks": ad.clicks}
            if trend:
                doc["trend"] = series[ad.ad_id]
            ads.append(doc)
        answer = {"from": iso(first), "to": iso(last), "minutes": (last - first) // MINUTE + 1,
                  "n": n, "ads": ads, "read": read}
        if chosen is not None:
            answer.update(slice=chosen.slice, value=chosen.value)
        return answer

    # `:path` because an ad id may contain '/' (any printable character:
    # docs/design.md, "The click message").
    @routes.get("/v1/ads/{ad_id:path}/clicks",
                summary="One ad's clicks per closed minute, hour or day, and total; "
                        "optionally within a slice's value (a filter)",
                responses=contract.answers(bodies.AdClicks, 400, 401, 404, 503))
    def ad_clicks(ad_id: Annotated[str, contract.ad_id_path()], filters: Filters,
                  dimension: DimensionFilters = None, first_text: From = None, last_text: To = None,
                  granularity: Granularity = "minute", *,
                  caller: Authenticated) -> dict[str, Any]:
        id_param(ad_id, "ad_id")  # before any query: PostgreSQL refuses a NUL outright
        chosen = selection(filters, dimension, configured)
        grain = GRAINS[granularity]
        with engine.connect() as conn:
            # Another advertiser's ad answers exactly as an ad nobody has: ids do not leak.
            if (caller.advertiser_id is not None
                    and not advertiser_reads.owns_ad(conn, caller.advertiser_id, ad_id)):
                raise HTTPException(404, f"no ad {ad_id!r} among this key's ads")
            if chosen is None:
                first, last = series_range(conn, grain, first_text, last_text)
                points = (agg_reads.ad_clicks(conn, ad_id, first=first, last=last)
                          if grain == MINUTE
                          else agg_reads.ad_clicks_rolled_up(conn, ad_id, grain, first=first,
                                                             last=last))
            else:
                first, last = series_range(conn, grain, first_text, last_text, partial(
                    slice_reads.last_closed_minute, slice_name=chosen.slice))
                points = (slice_reads.ad_clicks(conn, chosen.slice, chosen.value, ad_id,
                                                first=first, last=last)
                          if grain == MINUTE
                          else slice_reads.ad_clicks_rolled_up(
                              conn, chosen.slice, chosen.value, ad_id, grain, first=first,
                              last=last))
        answer = {"ad_id": ad_id, "from": iso(first), "to": iso(last),
                  "granularity": granularity, "total": sum(p["clicks"] for p in points),
                  f"{granularity}s": points}
        if chosen is not None:
            answer.update(slice=chosen.slice, value=chosen.value)
        return answer

    return routes
