"""The ingest worker's prefetch controller: how many unacked messages to ask for. Pure.

RabbitMQ counts prefetch in messages, but a worker's memory grows with the
clicks it holds: 12,000 messages of 100 clicks are 1.2 million clicks. The
controller sizes the window by the clicks per message seen so far, which
bounds memory whatever producers send without starving a worker fed one click
per message. The worker only applies its answer (basic.qos, then a new
consumer, because RabbitMQ applies a per-consumer prefetch only to consumers
created after it); why the window is per consumer and not channel-wide is
measured in docs/benchmarks.md ("Why the ingest code is as it is").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_PREFETCH = 16  # messages; keeps a worker busy even when messages are huge
BATCHES_IN_FLIGHT = 4  # batches of clicks in flight: one being written while the next ones fill
STARTING_PREFETCH = 200  # messages, until the first batch shows their size
SMOOTHING = 0.3  # weight of the newest batch in the clicks-per-message average
HYSTERESIS = 0.25  # relative change of the ideal prefetch that triggers basic.qos


def prefetch_for(clicks_per_message: float, batch_size: int, ceiling: int) -> int:
    """The prefetch (in messages) that keeps BATCHES_IN_FLIGHT batches of clicks in flight."""
    wanted = math.ceil(BATCHES_IN_FLIGHT * batch_size / max(1.0, clicks_per_message))
    return max(min(MIN_PREFETCH, ceiling), min(ceiling, wanted))


def starting_prefetch(ceiling: int) -> int:
    """The window of a fresh channel, before a batch has shown how many clicks a message holds.

    Small on purpose: a full window of 100-click messages would be over a
    million clicks in memory at once.
    """
    return min(STARTING_PREFETCH, ceiling)


@dataclass(frozen=True, slots=True)
class Window:
    """The prefetch in force and what the controller has learnt about message sizes."""

    prefetch: int  # messages, as last sent with basic.qos
    clicks_per_message: float | None = None  # running average, once a batch is seen


def follow(window: Window, *, items: int, messages: int, batch_size: int,
           ceiling: int) -> Window:
    """The window after one acked batch of ``messages`` holding ``items`` clicks and dead letters.

    The average is exponential, so one odd batch does not swing the window. The
    prefetch changes only when the ideal one is more than HYSTERESIS away from
    it: basic.qos is a round trip and each change re-subscribes, so with this
    margin that happens once when a worker starts and again only when the
    producers' message size changes. A returned ``prefetch`` different from
    ``window.prefetch`` is the caller's cue to apply it.
    """
    seen = items / messages
    average = window.clicks_per_message
    average = seen if average is None else average + SMOOTHING * (seen - average)
    wanted = prefetch_for(average, batch_size, ceiling)
    if abs(wanted - window.prefetch) > HYSTERESIS * window.prefetch:
        return Window(wanted, average)
    return Window(window.prefetch, average)
