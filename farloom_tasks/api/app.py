"""The query API and the dashboard (FastAPI). OpenAPI docs at /docs.

Reads schema agg through the read-only role only (agg_reads.read_only_url), so a
bug here can never change a billed number. Times accept RFC 3339,
'YYYY-MM-DD HH:MM' (UTC), a date or epoch seconds (exactly what core.query_times'
pattern matches), a time inside a minute meaning that minute; bad parameters get a
400 with a sentence saying what to send instead and a reason word. The OpenAPI
document lists every status a route answers (api/openapi_contract.py).
Long windows read the hour and day rollups (core.tiling; docs/design.md, "The
query API"). Every /v1 route needs an API key (api/auth.py) unless FARLOOM_API_OPEN=1;
an advertiser's key reads its own ads only (stores/advertiser_reads.py). The routes
are in routes_ads.py (with filters), routes_minutes.py and routes_owners.py (per
campaign and advertiser); their windows in query_windows.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from farloom_tasks.api import openapi_contract as contract
from farloom_tasks.api import response_bodies as bodies
from farloom_tasks.api import routes_ads, routes_minutes, routes_owners
from farloom_tasks.api.auth import Authenticated, Authenticator, require_admin
from farloom_tasks.api.query_windows import BadRequest
from farloom_tasks.core.dimensions import parse_dimensions
from farloom_tasks.core.health import assess
from farloom_tasks.core.query_times import TIME_DESCRIPTION
from farloom_tasks.core.slice_filters import FILTER_SLICES, filterable
from farloom_tasks.pipeline import status
from farloom_tasks.settings import Settings
from farloom_tasks.stores import agg_reads, db

STATIC_DIR = Path(__file__).parent / "static"
STATUS_CACHE_SECONDS = 2.0  # the dashboard polls; several tabs share one check


class _StatusCache:
    """The last status report, and the dead-letter count before it (growth check)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.report: dict[str, Any] | None = None
        self.at = 0.0
        self.dead_letters: int | None = None


def create_app(settings: Settings) -> FastAPI:
    engine = db.make_engine(
        agg_reads.read_only_url(settings.database_url, settings.api_database_url), pool_size=4)
    registry = CollectorRegistry()
    requests = Counter("farloom_api_requests", "HTTP requests answered",
                       ["route", "status"], registry=registry)
    latency = Histogram("farloom_api_request_seconds", "Time to answer a request",
                        ["route"], registry=registry,
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5))
    cache = _StatusCache()

    app = FastAPI(
        title="Farloom query API",
        version="1",
        description="Exact per-minute ad-click counts and top ads, read from schema agg. "
                    f"Times: {TIME_DESCRIPTION}. "
                    + ("Open: no key is asked for (FARLOOM_API_OPEN=1)." if settings.api_open
                       else "Every /v1 route needs `Authorization: Bearer <key>` "
                            "(`farloom api-key create`)."),
    )
    app.state.engine = engine
    app.state.authenticator = Authenticator(engine, open_mode=settings.api_open)

    @app.middleware("http")
    async def measure(request: Request,
                      call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        requests.labels(route, str(response.status_code)).inc()
        latency.labels(route).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(RequestValidationError)
    async def readable_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        messages = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error.get("loc", ())[1:]) or "request"
            messages.append(f"{where}: {error.get('msg', 'invalid')}")
        return JSONResponse({"detail": "; ".join(messages), "reason": "malformed"},
                            status_code=400)

    @app.exception_handler(BadRequest)
    async def bad_request(_: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"detail": exc.detail, "reason": exc.reason}, status_code=400)

    @app.exception_handler(sa.exc.OperationalError)
    async def database_down(_: Request, exc: sa.exc.OperationalError) -> JSONResponse:
        if "statement timeout" in str(exc.orig):  # the role's statement_timeout
            return JSONResponse({"detail": "the query took too long; ask for a shorter "
                                           "window or fewer minutes"}, status_code=503)
        return JSONResponse({"detail": "the database is unreachable; try again shortly"},
                            status_code=503)

    configured = parse_dimensions(settings.dimensions)
    app.include_router(routes_ads.router(engine, configured))
    app.include_router(routes_minutes.router(engine))
    app.include_router(routes_owners.router(engine))

    @app.get("/v1/status", summary="Pipeline health: last closed minute, lag, queues",
             responses=contract.answers(None, 401, 403, 503))
    def pipeline_status(caller: Authenticated) -> dict[str, Any]:
        require_admin(caller, "GET /v1/status")
        with cache.lock:
            now = time.time()
            if cache.report is None or now - cache.at >= STATUS_CACHE_SECONDS:
                snapshot = status.collect(engine=engine, amqp_url=settings.amqp_url,
                                          redis_url=settings.redis_url,
                                          redis_cluster=settings.redis_cluster, now=now,
                                          ask_celery=False)
                verdict = assess(snapshot, now=now,
                                 max_lag_seconds=settings.status_max_lag_seconds,
                                 previous_dead_letters=cache.dead_letters)
                cache.report = status.report(snapshot, verdict)
                cache.at = now
                if snapshot.dead_letters is not None:
                    cache.dead_letters = snapshot.dead_letters
            return cache.report

    @app.get("/healthz", summary="Liveness: the API answers and can read agg",
             response_model=bodies.HealthBody,
             responses={503: {"model": bodies.HealthBody,
                              "description": "The database is unreachable."}})
    def healthz() -> JSONResponse:
        try:
            with engine.connect() as conn:
                agg_reads.ping(conn)
        except sa.exc.SQLAlchemyError:
            return JSONResponse({"status": "unhealthy", "database": "unreachable"}, 503)
        return JSONResponse({"status": "ok", "database": "ok"})

    if settings.api_metrics:  # off by default: a 404 (FARLOOM_API_METRICS)
        @app.get("/metrics", include_in_schema=False)
        def metrics(caller: Authenticated) -> Response:
            require_admin(caller, "GET /metrics")
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    contract.document_truthfully(
        app, open_mode=settings.api_open,
        unserved_filters=frozenset(FILTER_SLICES) - filterable(configured),
        configured=configured)
    return app
