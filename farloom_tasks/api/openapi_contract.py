"""What the OpenAPI document promises: statuses, error bodies, parameter schemas.

The document is the contract a generated client is built from, so it says only what
the API does (docs/design.md §2.10), and tests/integration/test_openapi_contract.py
holds the API to it with schemathesis:

- every status a route can answer is listed with its body (``errors``);
- a time parameter carries core.query_times.TIME_PATTERN, and the API reads a time
  only once that pattern matched it, so client and server agree on every string;
- no route answers 422: the validation handler turns FastAPI's 422 into a 400 with
  a sentence, so ``document_truthfully`` takes out the 422 FastAPI adds;
- with FARLOOM_API_OPEN=1 no key is asked for, so the document names none.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Query
from fastapi import Path as PathParam
from pydantic import BaseModel

from farloom_tasks.api.response_bodies import BadRequestBody, ErrorBody
from farloom_tasks.core.clicks import MAX_ID_CHARS
from farloom_tasks.core.dimensions import Slice
from farloom_tasks.core.query_times import TIME_DESCRIPTION, TIME_EXAMPLES, TIME_PATTERN
from farloom_tasks.core.slice_filters import (
    ANY_DIMENSION_PATTERN,
    COUNTRY_PATTERN,
    DEVICE_PATTERN,
    DIMENSION_PARAM,
    MAX_DIMENSION_FILTERS,
    OWNER_ID_PATTERN,
    dimension_pattern,
    documented_dimensions,
    max_dimension_filters,
)

# A control character (C0, DEL, C1) is in no ad id (the click contract takes printable
# characters only), and PostgreSQL refuses a NUL in text outright: such an id is a 400.
AD_ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
AD_ID_MATCHES = re.compile(AD_ID_PATTERN)
# A query parameter sent empty (`?from=`) means the same as one left out.
OPTIONAL_TIME_PATTERN = rf"^$|{TIME_PATTERN}"

_MEANINGS = {
    400: "`reason` malformed: a parameter is outside its schema. Otherwise the "
         "parameters make no window the API serves: `from` after `to` "
         "(reversed_window), longer than the endpoint allows (window_too_long: 90 days "
         "for a top or an hour or day series, a week per minute), or `minutes`/`at` "
         "with `from`/`to`, `to` without `from` (conflicting_parameters); or filters it "
         "cannot serve: two whose combination is not a configured slice "
         "(unconfigured_combination), a filter whose slice is not configured "
         "(unconfigured_filter; such a filter is left out of this document, and a custom "
         "dimension not configured alone out of the `dimension` pattern), one custom "
         "dimension given twice (duplicate_filter). "
         "`detail` says what to send instead.",
    401: "No API key, or not a valid one: send `Authorization: Bearer <key>`.",
    403: "A valid key, but an advertiser's: this is for admin keys.",
    404: "No minute has been closed yet, the minute asked for has no result, or the ad, "
         "campaign or advertiser is not among this key's.",
    503: "The database is unreachable, or the query took too long; try again shortly "
         "or ask for less.",
}
_CHALLENGE = {"WWW-Authenticate": {
    "description": "`Bearer`, or `Bearer error=\"invalid_token\"` for a key that is "
                   "malformed, unknown or revoked",
    "schema": {"type": "string"}}}


def answers(body: type[BaseModel] | None, *statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route whose 200 has ``body`` (None: left as FastAPI
    describes it) and that can answer these error statuses."""
    documented: dict[int | str, dict[str, Any]] = {}
    if body is not None:
        documented[200] = {"model": body, "description": "Successful Response"}
    for status in statuses:
        documented[status] = {"model": BadRequestBody if status == 400 else ErrorBody,
                              "description": _MEANINGS[status]}
        if status == 401:
            documented[status]["headers"] = _CHALLENGE
    return documented


def time_query(alias: str, what: str) -> Any:
    """A time query parameter, typed by the pattern the API reads it with."""
    return Query(alias=alias, description=f"{what}: {TIME_DESCRIPTION}; empty means absent",
                 examples=list(TIME_EXAMPLES),
                 json_schema_extra={"pattern": OPTIONAL_TIME_PATTERN})


def time_path(what: str) -> Any:
    return PathParam(description=f"{what}: {TIME_DESCRIPTION}", examples=list(TIME_EXAMPLES),
                     json_schema_extra={"pattern": TIME_PATTERN})


def ad_id_path() -> Any:
    return PathParam(min_length=1, max_length=MAX_ID_CHARS,
                     description="the ad id, as the clicks carried it (URL-encoded; it may "
                                 "contain '/')",
                     json_schema_extra={"pattern": AD_ID_PATTERN})


_FILTERS = {
    "country": ("clicks from this country: an ISO 3166-1 alpha-2 code, any case",
                COUNTRY_PATTERN, None),
    "device": ("clicks from this device: desktop, mobile, tablet, tv or other, any case",
               DEVICE_PATTERN, None),
    "campaign_id": ("the ads of this campaign", OWNER_ID_PATTERN, MAX_ID_CHARS),
    "advertiser_id": ("the ads of this advertiser (an advertiser's key: its own, else "
                      "nothing)", OWNER_ID_PATTERN, MAX_ID_CHARS),
}


def filter_query(param: str) -> Any:
    """A filter (core.slice_filters): its pattern is what the API takes."""
    what, pattern, longest = _FILTERS[param]
    return Query(alias=param, max_length=longest,
                 description=f"{what}; empty means absent. Alone, or with one other where "
                             "their combination is a configured slice (FARLOOM_DIMENSIONS)",
                 json_schema_extra={"pattern": pattern})


def dimension_query() -> Any:
    """The custom dimensions' filter (core.slice_filters.parse_dimension_filters): one
    repeatable parameter, so the document's parameters are the same whatever
    FARLOOM_DIMENSIONS names. Its items' pattern takes any name the contract does;
    ``document_truthfully`` narrows it to the configured ones."""
    return Query(alias=DIMENSION_PARAM,
                 description="a custom dimension's value, as NAME:VALUE (`os:13`; the value "
                             "as the clicks carried it, case-sensitive); repeat it for a "
                             "combination. Alone, or with others (country, device, more "
                             "dimensions) where their combination is a configured slice "
                             "(FARLOOM_DIMENSIONS); empty means absent",
                 json_schema_extra={"items": {"type": "string",
                                              "pattern": ANY_DIMENSION_PATTERN},
                                    "maxItems": MAX_DIMENSION_FILTERS})


def owner_id_path(what: str) -> Any:
    return PathParam(min_length=1, max_length=MAX_ID_CHARS,
                     description=f"the {what} id, as the clicks carried it (URL-encoded; "
                                 "it may contain '/')",
                     json_schema_extra={"pattern": OWNER_ID_PATTERN})


def document_truthfully(app: FastAPI, *, open_mode: bool,
                        unserved_filters: frozenset[str] = frozenset(),
                        configured: Sequence[Slice] = ()) -> None:
    """Make ``app.openapi()`` (and so /openapi.json and /docs) leave out what FastAPI
    adds but the API never does (FastAPI's documented way: replace ``app.openapi``),
    and the filters whose slice FARLOOM_DIMENSIONS does not configure: the
    ``dimension`` pattern names only the custom dimensions ``configured`` alone
    (core.slice_filters.documented_dimensions), and without any the parameter is
    left out."""
    generate = app.openapi  # FastAPI's own, cached until the routes change

    def truthful() -> dict[str, Any]:
        return _amended(generate(), open_mode=open_mode, unserved_filters=unserved_filters,
                        configured=configured)

    app.openapi = truthful  # type: ignore[method-assign]


def _amended(document: dict[str, Any], *, open_mode: bool,
             unserved_filters: frozenset[str] = frozenset(),
             configured: Sequence[Slice] = ()) -> dict[str, Any]:
    """The document amended in place; running it twice changes nothing more."""
    custom_dimensions = documented_dimensions(configured)
    left_out = unserved_filters | ({DIMENSION_PARAM} if not custom_dimensions else set())
    for path_item in document["paths"].values():
        for operation in path_item.values():
            operation["responses"].pop("422", None)
            if "parameters" in operation:
                operation["parameters"] = [
                    parameter for parameter in operation["parameters"]
                    if not (parameter["in"] == "query" and parameter["name"] in left_out)]
            for parameter in operation.get("parameters", []):
                parameter["schema"] = _absent_not_null(parameter["schema"])
                if parameter["in"] == "query" and parameter["name"] == DIMENSION_PARAM:
                    _narrow_dimension_filter(parameter, custom_dimensions,
                                             max_dimension_filters(configured))
            if open_mode:
                operation.pop("security", None)
                for only_with_keys in ("401", "403"):
                    operation["responses"].pop(only_with_keys, None)
    components = document.get("components", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.get("schemas", {}).pop(unused, None)
    if open_mode:
        components.pop("securitySchemes", None)
    return document


def _narrow_dimension_filter(parameter: dict[str, Any], names: tuple[str, ...],
                             most: int) -> None:
    """The ``dimension`` items name only ``names``, and are at most ``most``: the API
    refuses more (core.slice_filters.max_dimension_filters)."""
    schema = parameter["schema"]
    schema["items"]["pattern"] = dimension_pattern(names)
    schema["maxItems"] = most
    parameter["examples"] = {"one": {"summary": f"the clicks whose {names[0]} is 13",
                                     "value": [f"{names[0]}:13"]}}


def _absent_not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional parameter is left out, never sent as null: ``anyOf [X, null]`` is X
    (with the outer keywords, such as the pattern, kept)."""
    branches = schema.get("anyOf")
    if not branches:
        return schema
    kept = [branch for branch in branches if branch != {"type": "null"}]
    if len(kept) != 1:
        return schema
    outer = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**kept[0], **outer}
