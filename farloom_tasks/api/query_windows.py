"""The query API's parameters as windows and ranges: parsed, defaulted and bounded.

Every route reads its times through these (docs/design.md §2.10): a time matches
core.query_times' pattern or is a 400 ``malformed``; ``from`` after ``to``, a window
longer than the route serves, and parameters that exclude each other are 400s with
their own reason words. Nothing closed yet is a 404.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import HTTPException, Query

from farloom_tasks.api import openapi_contract as contract
from farloom_tasks.api import response_bodies as bodies
from farloom_tasks.core.partitions import DAY, HOUR, start_of
from farloom_tasks.core.query_times import parse_query_minute
from farloom_tasks.core.windows import MINUTE, iso
from farloom_tasks.stores import agg_reads

if TYPE_CHECKING:
    import sqlalchemy as sa

# Every top (filtered or not, an advertiser's) and every series by hour or day: whole
# days and hours are read from rollups (core.tiling), so a filter changes no bound.
MAX_WINDOW_DAYS = 90
MAX_WINDOW_MINUTES = MAX_WINDOW_DAYS * 1440
MAX_RANGE_MINUTES = 10_080  # per-minute listings: a week at most (bounds the answer)
MAX_TOP_N = 1000
MAX_TREND_MINUTES = 120
GRAINS = {"minute": MINUTE, "hour": HOUR, "day": DAY}
# A series by hour or day without `from` covers this many hours or days.
DEFAULT_POINTS = {HOUR: 24, DAY: 7}
MAX_POINTS = {HOUR: MAX_WINDOW_DAYS * 24, DAY: MAX_WINDOW_DAYS}

# The parameters every route shares, declared once. Module level: FastAPI resolves
# these annotations from the module's globals.
# A series' range (minutes, hours or days, as its granularity says):
From = Annotated[str | None, contract.time_query("from", "first minute (inclusive)")]
To = Annotated[str | None, contract.time_query("to", "last minute (inclusive)")]
Granularity = Annotated[Literal["minute", "hour", "day"], Query(
    description=f"minute (ranges up to {MAX_RANGE_MINUTES} minutes, a week), hour or day "
                f"(up to {MAX_WINDOW_DAYS} days; both ends rounded down to the hour or day)")]
# A top's window: `minutes` ending at `at`, or `from` through `to` (top_window).
TopN = Annotated[int, Query(ge=1, le=MAX_TOP_N, description="how many ads to rank")]
WindowMinutes = Annotated[int | None, Query(
    ge=1, le=MAX_WINDOW_MINUTES,
    description=f"window length (default 60; at most {MAX_WINDOW_DAYS} days)")]
At = Annotated[str | None, contract.time_query("at", "last minute; default: last closed")]
WindowFrom = Annotated[str | None, contract.time_query(
    "from", "first minute (inclusive), instead of minutes")]
WindowTo = Annotated[str | None, contract.time_query(
    "to", "last minute (inclusive); default: last closed")]
# The custom dimensions' filter, `dimension=os:13` repeated (core.slice_filters).
DimensionFilters = Annotated[list[str] | None, contract.dimension_query()]

# The newest closed minute, or None: of agg.minute_totals, or of a slice.
LastClosed = Callable[["sa.Connection"], "int | None"]


class BadRequest(HTTPException):
    """A 400 whose body says why in a word too (openapi_contract.BadRequestBody): a
    client can tell a malformed parameter from a window the API will not serve."""

    def __init__(self, message: str, reason: bodies.Reason = "malformed") -> None:
        super().__init__(status_code=400, detail=message)
        self.reason = reason


def minute_param(text: str | None, name: str) -> int | None:
    if text is None or text == "":
        return None
    try:
        return parse_query_minute(text)
    except ValueError as exc:
        raise BadRequest(f"{name}: {exc}") from None


def id_param(value: str, name: str) -> str:
    if contract.AD_ID_MATCHES.search(value) is None:
        raise BadRequest(f"{name}: {value!r} has a control character; ids are printable")
    return value


def closed_or_404(conn: sa.Connection, at: int | None,
                  last_closed: LastClosed = agg_reads.last_closed_minute) -> int:
    if at is not None:
        return at
    last = last_closed(conn)
    if last is None:
        raise HTTPException(404, "no minute has been closed yet")
    return last


def bounded_range(conn: sa.Connection, first_text: str | None, last_text: str | None,
                  last_closed: LastClosed = agg_reads.last_closed_minute) -> tuple[int, int]:
    """Both ends default to the last closed hour; the range is bounded."""
    last = minute_param(last_text, "to")
    first = minute_param(first_text, "from")
    if last is None:
        last = closed_or_404(conn, None, last_closed) if first is None else first + 59 * MINUTE
    if first is None:
        first = last - 59 * MINUTE
    if first > last:
        raise BadRequest(f"from ({iso(first)}) is after to ({iso(last)})", "reversed_window")
    if (last - first) // MINUTE + 1 > MAX_RANGE_MINUTES:
        raise BadRequest(f"the range spans more than {MAX_RANGE_MINUTES} minutes; "
                         "ask for a shorter one", "window_too_long")
    return first, last


def top_window(conn: sa.Connection, minutes: int | None, at_text: str | None,
               first_text: str | None, last_text: str | None, *,
               last_closed: LastClosed = agg_reads.last_closed_minute) -> tuple[int, int]:
    """The window's first and last minute (inclusive), from minutes/at or from/to."""
    # Sent empty is left out (`?from=`), here as in minute_param.
    at_text, first_text, last_text = (None if text == "" else text
                                       for text in (at_text, first_text, last_text))
    if first_text is None and last_text is None:
        last = closed_or_404(conn, minute_param(at_text, "at"), last_closed)
        first = last - ((minutes or 60) - 1) * MINUTE
    else:
        if minutes is not None or at_text is not None:
            raise BadRequest("give either minutes (and at) or from (and to), not both",
                             "conflicting_parameters")
        parsed = minute_param(first_text, "from")
        if parsed is None:
            raise BadRequest("to needs a from; or give minutes (and at)",
                             "conflicting_parameters")
        first = parsed
        last = closed_or_404(conn, minute_param(last_text, "to"), last_closed)
        if first > last:
            raise BadRequest(f"from ({iso(first)}) is after to ({iso(last)})",
                             "reversed_window")
    span = (last - first) // MINUTE + 1
    if span > MAX_WINDOW_MINUTES:
        raise BadRequest(f"the window spans {span} minutes, more than {MAX_WINDOW_MINUTES} "
                         f"({MAX_WINDOW_DAYS} days); ask for a shorter one", "window_too_long")
    return first, last


def bounded_rollup_range(conn: sa.Connection, grain: int, first_text: str | None,
                         last_text: str | None,
                         last_closed: LastClosed = agg_reads.last_closed_minute,
                         ) -> tuple[int, int]:
    """Hours or days: both ends rounded down to the grain; by default the last
    DEFAULT_POINTS of them through the one holding the last closed minute."""
    last = minute_param(last_text, "to")
    first = minute_param(first_text, "from")
    if last is None:
        last = (closed_or_404(conn, None, last_closed) if first is None
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


def series_range(conn: sa.Connection, grain: int, first_text: str | None,
                 last_text: str | None,
                 last_closed: LastClosed = agg_reads.last_closed_minute) -> tuple[int, int]:
    """A series' range at its granularity: minutes (bounded_range) or hours and days
    (bounded_rollup_range)."""
    if grain == MINUTE:
        return bounded_range(conn, first_text, last_text, last_closed)
    return bounded_rollup_range(conn, grain, first_text, last_text, last_closed)
