"""``GET /v1/ads/top`` and ``GET /v1/ads/{ad_id}/clicks``, with or without a filter.

Unfiltered, they read the per-ad counts and their rollups (stores/agg_reads.py, or
stores/advertiser_reads.py for an advertiser's key). A filter (core.slice_filters)
reads its slice's minute rows instead (stores/slice_reads.py): minutes only, and a
window of a day at most, until slices have hour and day rollups (docs/design.md
§2.10, "Filters"). An advertiser's key counts its own ads only, whatever the filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, HTTPException, Query

from farloom_tasks.api import openapi_contract as contract
from farloom_tasks.api import response_bodies as bodies
from farloom_tasks.api.auth import Authenticated
from farloom_tasks.api.query_windows import (
    GRAINS,
    MAX_FILTERED_WINDOW_MINUTES,
    MAX_WINDOW_DAYS,
    MAX_WINDOW_MINUTES,
    BadRequest,
    From,
    To,
    bounded_range,
    bounded_rollup_range,
    id_param,
    top_window,
)
from farloom_tasks.core import slice_filters
from farloom_tasks.core.dimensions import Slice
from farloom_tasks.core.tiling import tile, units_per_grain
from farloom_tasks.core.windows import MINUTE, iso
from farloom_tasks.stores import advertiser_reads, agg_reads, db, slice_reads

MAX_TREND_MINUTES = 120
MAX_TOP_N = 1000


def filter_params(
        country: Annotated[str | None, contract.filter_query("country")] = None,
        device: Annotated[str | None, contract.filter_query("device")] = None,
        campaign_id: Annotated[str | None, contract.filter_query("campaign_id")] = None,
        advertiser_id: Annotated[str | None, contract.filter_query("advertiser_id")] = None,
) -> dict[str, str | None]:
    return {"country": country, "device": device, "campaign_id": campaign_id,
            "advertiser_id": advertiser_id}


Filters = Annotated[dict[str, str | None], Depends(filter_params)]


def selection(filters: dict[str, str | None],
              configured: Sequence[Slice]) -> slice_filters.Selection | None:
    try:
        return slice_filters.select(filters, configured)
    except slice_filters.FilterError as exc:
        raise BadRequest(str(exc), cast(bodies.Reason, exc.reason)) from None


def router(engine: db.Engine, configured: Sequence[Slice]) -> APIRouter:
    routes = APIRouter()

    @routes.get("/v1/ads/top",
                summary="Exact top N ads over the M minutes ending at `at`, or from `from` "
                        "to `to`; optionally within a slice's value (a filter)",
                responses=contract.answers(bodies.TopAds, 400, 401, 404, 503))
    def top(filters: Filters,
            n: Annotated[int, Query(ge=1, le=MAX_TOP_N)] = 100,
            minutes: Annotated[int | None, Query(
                ge=1, le=MAX_WINDOW_MINUTES,
                description=f"window length (default 60; at most {MAX_WINDOW_DAYS} days, "
                            f"{MAX_FILTERED_WINDOW_MINUTES} minutes with a filter)")]
            = None,
            at: Annotated[str | None, contract.time_query(
                "at", "last minute; default: last closed")] = None,
            first_text: Annotated[str | None, contract.time_query(
                "from", "first minute (inclusive), instead of minutes")] = None,
            last_text: Annotated[str | None, contract.time_query(
                "to", "last minute (inclusive); default: last closed")] = None,
            trend: Annotated[int, Query(ge=0, le=MAX_TREND_MINUTES,
                                        description="minutes of per-ad trend to include")]
            = 0, *, caller: Authenticated) -> dict[str, Any]:
        chosen = selection(filters, configured)
        with engine.connect() as conn:
            if chosen is None:
                first, last = top_window(conn, minutes, at, first_text, last_text)
                runs = tile(first, last + MINUTE)
                ranked = (agg_reads.top_ads_tiled(conn, runs, n=n)
                          if caller.advertiser_id is None
                          else advertiser_reads.top_ads_tiled(conn, caller.advertiser_id, runs,
                                                              n=n))
                trend_first = last - (trend - 1) * MINUTE
                series = (agg_reads.trends(conn, [ad.ad_id for ad in ranked],
                                           first=trend_first, last=last) if trend else {})
                read = units_per_grain(runs)
            else:
                first, last = top_window(
                    conn, minutes, at, first_text, last_text,
                    limit=MAX_FILTERED_WINDOW_MINUTES,
                    last_closed=partial(slice_reads.last_closed_minute,
                                        slice_name=chosen.slice))
                ranked = slice_reads.top_ads(conn, chosen.slice, chosen.value, first=first,
                                             last=last, n=n, advertiser=caller.advertiser_id)
                series = (slice_reads.trends(conn, chosen.slice, chosen.value,
                                             [ad.ad_id for ad in ranked],
                                             first=last - (trend - 1) * MINUTE, last=last)
                          if trend else {})
                read = {"day": 0, "hour": 0, "minute": (last - first) // MINUTE + 1}
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
                        "optionally within a slice's value (a filter, minutes only)",
                responses=contract.answers(bodies.AdClicks, 400, 401, 404, 503))
    def ad_clicks(ad_id: Annotated[str, contract.ad_id_path()], filters: Filters,
                  first_text: From = None, last_text: To = None,
                  granularity: Annotated[Literal["minute", "hour", "day"], Query(
                      description="minute (ranges up to a week), hour or day (up to "
                                  f"{MAX_WINDOW_DAYS} days); minute only with a filter")]
                  = "minute", *, caller: Authenticated) -> dict[str, Any]:
        id_param(ad_id, "ad_id")  # before any query: PostgreSQL refuses a NUL outright
        chosen = selection(filters, configured)
        grain = GRAINS[granularity]
        if chosen is not None and grain != MINUTE:
            raise BadRequest(f"a filter reads minutes only: slice rollups by {granularity} "
                             "are not built yet; send granularity=minute", "no_slice_rollups")
        with engine.connect() as conn:
            # Another advertiser's ad answers exactly as an ad nobody has: ids do not leak.
            if (caller.advertiser_id is not None
                    and not advertiser_reads.owns_ad(conn, caller.advertiser_id, ad_id)):
                raise HTTPException(404, f"no ad {ad_id!r} among this key's ads")
            if chosen is not None:
                first, last = bounded_range(
                    conn, first_text, last_text,
                    partial(slice_reads.last_closed_minute, slice_name=chosen.slice))
                points = slice_reads.ad_clicks(conn, chosen.slice, chosen.value, ad_id,
                                               first=first, last=last)
            elif grain == MINUTE:
                first, last = bounded_range(conn, first_text, last_text)
                points = agg_reads.ad_clicks(conn, ad_id, first=first, last=last)
            else:
                first, last = bounded_rollup_range(conn, grain, first_text, last_text)
                points = agg_reads.ad_clicks_rolled_up(conn, ad_id, grain, first=first,
                                                       last=last)
        answer = {"ad_id": ad_id, "from": iso(first), "to": iso(last),
                  "granularity": granularity, "total": sum(p["clicks"] for p in points),
                  f"{granularity}s": points}
        if chosen is not None:
            answer.update(slice=chosen.slice, value=chosen.value)
        return answer

    return routes
