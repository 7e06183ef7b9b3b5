"""The query API and the dashboard (FastAPI). OpenAPI docs at /docs.

Reads schema agg through the read-only role only (agg_reads.read_only_url), so a
bug here can never change a billed number. Times accept RFC 3339,
'YYYY-MM-DD HH:MM' (UTC), a date or epoch seconds (exactly what core.query_times'
pattern matches), a time inside a minute meaning that minute; bad parameters get a
400 with a sentence saying what to send instead and a reason word. The OpenAPI
document lists every status a route answers (api/openapi_contract.py).
Long windows read the hour and day rollups (core.tiling; docs/design.md, "The
query API"). Every /v1 route needs an API key (api/auth.py) unless FARLOOM_API_OPEN=1;
an advertiser's key reads its own ads only (stores/advertiser_reads.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Query, Request, Response
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
from farloom_tasks.api.auth import Authenticated, Authenticator, require_admin
from farloom_tasks.core.health import assess
from farloom_tasks.core.partitions import DAY, HOUR, start_of
from farloom_tasks.core.query_times import TIME_DESCRIPTION, parse_query_minute
from farloom_tasks.core.tiling import tile, units_per_grain
from farloom_tasks.core.windows import MINUTE, iso
from farloom_tasks.pipeline import status
from farloom_tasks.settings import Settings
from farloom_tasks.stores import advertiser_reads, agg_reads, db

STATIC_DIR = Path(__file__).parent / "static"
MAX_WINDOW_DAYS = 90  # GET /v1/ads/top, and the per-ad series by hour or day
MAX_WINDOW_MINUTES = MAX_WINDOW_DAYS * 1440
MAX_RANGE_MINUTES = 10_080  # per-minute listings: a week at most (bounds the answer)
GRAINS = {"minute": MINUTE, "hour": HOUR, "day": DAY}
# A series by hour or day without `from` covers this many hours or days.
DEFAULT_POINTS = {HOUR: 24, DAY: 7}
MAX_POINTS = {HOUR: MAX_WINDOW_DAYS * 24, DAY: MAX_WINDOW_DAYS}
MAX_TREND_MINUTES = 120
MAX_TOP_N = 1000
STATUS_CACHE_SECONDS = 2.0  # the dashboard polls; several tabs share one check

# Module level: FastAPI resolves these annotations from the module's globals.
From = Annotated[str | None, contract.time_query("from", "first minute (inclusive)")]
To = Annotated[str | None, contract.time_query("to", "last minute (inclusive)")]


class BadRequest(HTTPException):
    """A 400 whose body says why in a word too (openapi_contract.BadRequestBody): a
    client can tell a malformed parameter from a window the API will not serve."""

    def __init__(self, message: str, reason: bodies.Reason = "malformed") -> None:
        super().__init__(status_code=400, detail=message)
        self.reason = reason


def _minute_param(text: str | None, name: str) -> int | None:
    if text is None or text == "":
        return None
    try:
        return parse_query_minute(text)
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from None


def _ad_id_param(ad_id: str) -> str:
    if contract.AD_ID_MATCHES.search(ad_id) is None:
        raise BadRequest(f"ad_id: {ad_id!r} has a control character; ad ids are printable")
    return ad_id


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

    def closed_or_404(conn: sa.Connection, at: int | None) -> int:
        if at is not None:
            return at
        last = agg_reads.last_closed_minute(conn)
        if last is None:
            raise HTTPException(404, "no minute has been closed yet")
        return last

    def bounded_range(conn: sa.Connection, first_text: str | None,
                      last_text: str | None) -> tuple[int, int]:
        """Both ends default to the last closed hour; the range is bounded."""
        last = _minute_param(last_text, "to")
        first = _minute_param(first_text, "from")
        if last is None:
            last = closed_or_404(conn, None) if first is None else first + 59 * MINUTE
        if first is None:
            first = last - 59 * MINUTE
        if first > last:
            raise BadRequest(f"from ({iso(first)}) is after to ({iso(last)})", "reversed_window")
        if (last - first) // MINUTE + 1 > MAX_RANGE_MINUTES:
            raise BadRequest(f"the range spans more than {MAX_RANGE_MINUTES} minutes; "
                             "ask for a shorter one", "window_too_long")
        return first, last

    def top_window(conn: sa.Connection, minutes: int | None, at_text: str | None,
                   first_text: str | None, last_text: str | None) -> tuple[int, int]:
        """The window's first and last minute (inclusive), from minutes/at or from/to."""
        # Sent empty is left out (`?from=`), here as in _minute_param.
        at_text, first_text, last_text = (None if text == "" else text
                                           for text in (at_text, first_text, last_text))
        if first_text is None and last_text is None:
            last = closed_or_404(conn, _minute_param(at_text, "at"))
            return last - ((minutes or 60) - 1) * MINUTE, last
        if minutes is not None or at_text is not None:
            raise BadRequest("give either minutes (and at) or from (and to), not both",
                             "conflicting_parameters")
        first = _minute_param(first_text, "from")
        if first is None:
            raise BadRequest("to needs a from; or give minutes (and at)",
                             "conflicting_parameters")
        last = closed_or_404(conn, _minute_param(last_text, "to"))
        if first > last:
            raise BadRequest(f"from ({iso(first)}) is after to ({iso(last)})", "reversed_window")
        span = (last - first) // MINUTE + 1
        if span > MAX_WINDOW_MINUTES:
            raise BadRequest(f"the window spans {span} minutes, more than "
                             f"{MAX_WINDOW_MINUTES} ({MAX_WINDOW_DAYS} days); "
                             "ask for a shorter one", "window_too_long")
        return first, last

    @app.get("/v1/ads/top",
             summary="Exact top N ads over the M minutes ending at `at`, or from `from` to `to`",
             responses=contract.answers(bodies.TopAds, 400, 401, 404, 503))
    def top(n: Annotated[int, Query(ge=1, le=MAX_TOP_N)] = 100,
            minutes: Annotated[int | None, Query(
                ge=1, le=MAX_WINDOW_MINUTES,
                description=f"window length (default 60; at most {MAX_WINDOW_DAYS} days)")]
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
        with engine.connect() as conn:
            first, last = top_window(conn, minutes, at, first_text, last_text)
            runs = tile(first, last + MINUTE)
            ranked = (agg_reads.top_ads_tiled(conn, runs, n=n) if caller.advertiser_id is None
                      else advertiser_reads.top_ads_tiled(conn, caller.advertiser_id, runs, n=n))
            series = (agg_reads.trends(conn, [ad.ad_id for ad in ranked],
                                       first=last - (trend - 1) * MINUTE, last=last)
                      if trend else {})
        ads: list[dict[str, Any]] = []
        for ad in ranked:
            doc: dict[str, Any] = {"rank": ad.rank, "ad_id": ad.ad_id, "clicks": ad.clicks}
            if trend:
                doc["trend"] = series[ad.ad_id]
            ads.append(doc)
        return {"from": iso(first), "to": iso(last), "minutes": (last - first) // MINUTE + 1,
                "n": n, "ads": ads, "read": units_per_grain(runs)}

    def bounded_rollup_range(conn: sa.Connection, grain: int, first_text: str | None,
                             last_text: str | None) -> tuple[int, int]:
        """Hours or days: both ends rounded down to the grain; by default the last
        DEFAULT_POINTS of them through the one holding the last closed minute."""
        last = _minute_param(last_text, "to")
        first = _minute_param(first_text, "from")
        if last is None:
            last = (closed_or_404(conn, None) if first is None
                    else first + (DEFAULT_POINTS[grain] - 1) * grain)
        last = start_of(last, grain)
        first = (last - (DEFAULT_POINTS[grain] - 1) * grain if first is None
                 else start_of(first, grain))
        if first > last:
            raise BadRequest(f"from ({iso(first)}) is after to ({iso(last)})", "reversed_window")
        if (last - first) // grain + 1 > MAX_POINTS[grain]:
            raise BadRequest(f"the range spans more than {MAX_WINDOW_DAYS} days; "
                             "ask for a shorter one", "window_too_long")
        return first, last

    # `:path` because an ad id may contain '/' (any printable character:
    # docs/design.md, "The click message").
    @app.get("/v1/ads/{ad_id:path}/clicks",
             summary="One ad's clicks per closed minute, hour or day, and total",
             responses=contract.answers(bodies.AdClicks, 400, 401, 404, 503))
    def ad_clicks(ad_id: Annotated[str, contract.ad_id_path()],
                  first_text: From = None, last_text: To = None,
                  granularity: Annotated[Literal["minute", "hour", "day"], Query(
                      description="minute (ranges up to a week), hour or day (up to "
                                  f"{MAX_WINDOW_DAYS} days)")] = "minute", *,
                  caller: Authenticated) -> dict[str, Any]:
        _ad_id_param(ad_id)  # before any query: PostgreSQL refuses a NUL outright
        grain = GRAINS[granularity]
        with engine.connect() as conn:
            # Another advertiser's ad answers exactly as an ad nobody has: ids do not leak.
            if (caller.advertiser_id is not None
                    and not advertiser_reads.owns_ad(conn, caller.advertiser_id, ad_id)):
                raise HTTPException(404, f"no ad {ad_id!r} among this key's ads")
            if grain == MINUTE:
                first, last = bounded_range(conn, first_text, last_text)
                points = agg_reads.ad_clicks(conn, ad_id, first=first, last=last)
            else:
                first, last = bounded_rollup_range(conn, grain, first_text, last_text)
                points = agg_reads.ad_clicks_rolled_up(conn, ad_id, grain, first=first,
                                                       last=last)
        return {"ad_id": ad_id, "from": iso(first), "to": iso(last),
                "granularity": granularity, "total": sum(p["clicks"] for p in points),
                f"{granularity}s": points}

    @app.get("/v1/minutes/{minute}", summary="One minute's total, distinct ads and revision",
             responses=contract.answers(bodies.MinuteResult, 400, 401, 404, 503))
    def one_minute(minute: Annotated[str, contract.time_path("the minute")],
                   caller: Authenticated) -> dict[str, Any]:
        at = _minute_param(minute, "minute")
        assert at is not None
        with engine.connect() as conn:
            found = (agg_reads.minute(conn, at) if caller.advertiser_id is None
                     else advertiser_reads.minute(conn, caller.advertiser_id, at))
        if found is None:
            raise HTTPException(404, f"minute {iso(at)} has no result (not closed yet?)")
        return found

    @app.get("/v1/minutes", summary="Totals of every closed minute in a range",
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
    contract.document_truthfully(app, open_mode=settings.api_open)
    return app
