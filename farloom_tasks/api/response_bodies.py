"""The bodies the query API answers with, as the OpenAPI document describes them.

Documentation only: the routes build plain dicts and FastAPI does not pass them
through these models (``responses=``, not ``response_model=``), so serving costs
nothing more. What keeps a model true is the contract test
(tests/integration/test_openapi_contract.py): schemathesis checks every answer
against its model. A body may carry more fields than its model lists; a client
ignores those.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


def moment(description: str = "", alias: str | None = None) -> Any:
    """A time field: RFC 3339 in UTC, as core.windows.iso writes it."""
    return Field(alias=alias, description=description or "RFC 3339, UTC",
                 json_schema_extra={"format": "date-time"})


class RankedAd(BaseModel):
    rank: int = Field(ge=1)
    ad_id: str
    clicks: int = Field(ge=0)
    trend: list[int] | None = Field(
        default=None, description="clicks per minute, oldest first (only with trend > 0)")


class UnitsRead(BaseModel):
    """How many whole days, hours and edge minutes the window was summed from."""

    day: int = Field(ge=0)
    hour: int = Field(ge=0)
    minute: int = Field(ge=0)


class TopAds(BaseModel):
    first: str = moment("the window's first minute", alias="from")
    last: str = moment("the window's last minute", alias="to")
    minutes: int = Field(ge=1)
    n: int = Field(ge=1)
    ads: list[RankedAd]
    read: UnitsRead
    slice: str | None = Field(default=None, description="with a filter: the slice it read")
    value: str | None = Field(default=None, description="with a filter: the slice's value")


class MinuteClicks(BaseModel):
    minute: str = moment()
    clicks: int = Field(ge=0)


class HourClicks(BaseModel):
    hour: str = moment()
    clicks: int = Field(ge=0)


class DayClicks(BaseModel):
    day: str = moment()
    clicks: int = Field(ge=0)


class AdClicks(BaseModel):
    """The series is under the granularity's plural: ``minutes``, ``hours`` or ``days``."""

    ad_id: str
    first: str = moment(alias="from")
    last: str = moment(alias="to")
    granularity: Literal["minute", "hour", "day"]
    total: int = Field(ge=0)
    minutes: list[MinuteClicks] | None = None
    hours: list[HourClicks] | None = None
    days: list[DayClicks] | None = None
    slice: str | None = Field(default=None, description="with a filter: the slice it read")
    value: str | None = Field(default=None, description="with a filter: the slice's value")


class CampaignClicks(BaseModel):
    """Per minute, hour or day closed for the campaign slice (under the granularity's
    plural); a period without the campaign is 0."""

    campaign_id: str
    first: str = moment(alias="from")
    last: str = moment(alias="to")
    granularity: Literal["minute", "hour", "day"]
    total: int = Field(ge=0)
    minutes: list[MinuteClicks] | None = None
    hours: list[HourClicks] | None = None
    days: list[DayClicks] | None = None


class AdvertiserClicks(BaseModel):
    """Per minute, hour or day closed for the advertiser slice (under the granularity's
    plural); a period without its ads is 0."""

    advertiser_id: str
    first: str = moment(alias="from")
    last: str = moment(alias="to")
    granularity: Literal["minute", "hour", "day"]
    total: int = Field(ge=0)
    minutes: list[MinuteClicks] | None = None
    hours: list[HourClicks] | None = None
    days: list[DayClicks] | None = None


class AdvertiserTopAds(BaseModel):
    advertiser_id: str
    first: str = moment("the window's first minute", alias="from")
    last: str = moment("the window's last minute", alias="to")
    minutes: int = Field(ge=1)
    n: int = Field(ge=1)
    ads: list[RankedAd]
    read: UnitsRead


class MinuteResult(BaseModel):
    minute: str = moment()
    clicks: int = Field(ge=0)
    distinct_ads: int = Field(ge=0)
    revision: int = Field(ge=1)
    computed_at: str = moment("when this revision was written")


class MinuteResults(BaseModel):
    first: str = moment(alias="from")
    last: str = moment(alias="to")
    minutes: list[MinuteResult]


class ErrorBody(BaseModel):
    """Every 4xx and 5xx but a 400: one sentence saying what went wrong and what to do."""

    detail: str


# Why a 400: a parameter outside its schema ("malformed": a client validating against
# the document never sends one), or parameters each valid that make no window the API
# serves (its rules across parameters, which a schema cannot state).
# A filter (core.slice_filters) the API cannot serve has its own words: its slice or
# combination is not configured, or one dimension is given twice (`dimension=os:1&
# dimension=os:2`: a schema cannot say that items differ in their names).
Reason = Literal["malformed", "reversed_window", "window_too_long", "conflicting_parameters",
                 "unconfigured_filter", "unconfigured_combination", "duplicate_filter"]


class BadRequestBody(BaseModel):
    """A 400: the sentence, and its reason as a word a client can branch on."""

    detail: str
    reason: Reason


class HealthBody(BaseModel):
    status: Literal["ok", "unhealthy"]
    database: Literal["ok", "unreachable"]
