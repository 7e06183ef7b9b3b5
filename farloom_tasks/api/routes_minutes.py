"""``GET /v1/minutes`` and ``GET /v1/minutes/{minute}``: each closed minute's totals.

An advertiser's key gets its own ads' clicks and distinct ads in each minute, with
the minute's revision (stores/advertiser_reads.py; docs/design.md §2.10, "Scoping").
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException

from farloom_tasks.api import openapi_contract as contract
from farloom_tasks.api import response_bodies as bodies
from farloom_tasks.api.auth import Authenticated
from farloom_tasks.api.query_windows import From, To, bounded_range, minute_param
from farloom_tasks.core.windows import iso
from farloom_tasks.stores import advertiser_reads, agg_reads, db


def router(engine: db.Engine) -> APIRouter:
    routes = APIRouter()

    @routes.get("/v1/minutes/{minute}",
                summary="One minute's total, distinct ads and revision",
                responses=contract.answers(bodies.MinuteResult, 400, 401, 404, 503))
    def one_minute(minute: Annotated[str, contract.time_path("the minute")],
                   caller: Authenticated) -> dict[str, Any]:
        at = minute_param(minute, "minute")
        assert at is not None
        with engine.connect() as conn:
            found = (agg_reads.minute(conn, at) if caller.advertiser_id is None
                     else advertiser_reads.minute(conn, caller.advertiser_id, at))
        if found is None:
            raise HTTPException(404, f"minute {iso(at)} has no result (not closed yet?)")
        return found

    @routes.get("/v1/minutes", summary="Totals of every closed minute in a range",
                responses=contract.answers(bodies.MinuteResults, 400, 401, 404, 503))
    def minute_range(caller: Authenticated, first_text: From = None,
                     last_text: To = None) -> dict[str, Any]:
        with engine.connect() as conn:
            first, last = bounded_range(conn, first_text, last_text)
            found = (agg_reads.minutes(conn, first=first, last=last)
                     if caller.advertiser_id is None
                     else advertiser_reads.minutes(conn, caller.advertiser_id, first=first,
                                                   last=last))
        return {"from": iso(first), "to": iso(last), "minutes": found}

    return routes
