"""Grouping new clicks into per-shard, per-minute increments. Pure.

The same shape travels three ways: into the Redis script, into the outbox row
(as JSON, whose object keys must be strings) and back out of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from farloom_tasks.core.shards import shard_of

# {shard: {minute: {ad_id: clicks}}}
Increments = dict[int, dict[int, dict[str, int]]]


def group_counts(counted: Iterable[tuple[str, int, int]], shard_count: int) -> Increments:
    """Group (ad_id, minute, clicks) rows by shard and minute; a pair may come more than once."""
    grouped: Increments = {}
    for ad_id, minute, clicks in counted:
        ads = grouped.setdefault(shard_of(ad_id, shard_count), {}).setdefault(minute, {})
        ads[ad_id] = ads.get(ad_id, 0) + clicks
    return grouped


def to_json(increments: Increments) -> dict[str, Any]:
    return {str(shard): {str(minute): ads for minute, ads in minutes.items()}
            for shard, minutes in increments.items()}


def from_json(document: dict[str, Any]) -> Increments:
    return {int(shard): {int(minute): {str(ad): int(n) for ad, n in ads.items()}
                         for minute, ads in minutes.items()}
            for shard, minutes in document.items()}


def minutes_of(increments: Increments) -> set[int]:
    return {minute for minutes in increments.values() for minute in minutes}


def clicks_per_minute(increments: Increments) -> dict[int, int]:
    totals: dict[int, int] = {}
    for minutes in increments.values():
        for minute, ads in minutes.items():
            totals[minute] = totals.get(minute, 0) + sum(ads.values())
    return totals


def by_shard(ad_counts: Iterable[tuple[str, int]], shard_count: int) -> list[dict[str, int]]:
    """(ad_id, clicks) rows of one minute, one row per ad, as one {ad_id: clicks} per shard."""
    pages: list[dict[str, int]] = [{} for _ in range(shard_count)]
    for ad_id, clicks in ad_counts:
        pages[shard_of(ad_id, shard_count)][ad_id] = clicks
    return pages
