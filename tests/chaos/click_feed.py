"""The chaos tests' own click traffic, and the truth a correct pipeline must produce from it.

A ``ClickFeed`` is a ``farloom_tasks.stores.click_source.Source``: the log watcher's own
confirming publisher sends it (persistent messages, publisher confirms,
republish after a lost connection), so a broker restart is met by the same
code production uses. Clicks are generated when the publisher takes them and
dated from the wall clock then:
- valid clicks dated ``min_age_seconds`` to ``min_age_seconds + spread_seconds``
  ago, Zipf-ish over ``ads``: recent, so their minutes close soon after the feed
  ends (a click older than its minute's deadline is a late one, as from a
  client whose clock or queue lags);
- duplicates: exact copies of a recent valid click (same id, ad and time);
- late clicks: dated 150-240 s ago, in minutes that are already closed;
- invalid elements of known reason codes, and now and then a body that is not JSON.

Truth is recorded as messages are taken. The publisher never drops a taken
message (it republishes until the broker confirms), so once ``FeedRun.wait``
returns, everything recorded has been confirmed; ``assert_exact`` insists on
that. Valid click ids are ``<prefix>-<n>`` for n in 0..valid_clicks-1, so
"exactly these ids" is checkable in SQL without holding them all.
"""

from __future__ import annotations

import bisect
import json
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from farloom_tasks.core.traffic import TokenBucket, zipf_cumulative_weights
from farloom_tasks.stores import topology
from farloom_tasks.stores.click_publisher import ConfirmingPublisher
from farloom_tasks.stores.click_source import Outgoing, PublishStats
from tests.support.stack import Stack

MINUTE = 60
LATE_SECONDS = (150.0, 240.0)  # a late click's age: its minute closed long ago (grace 1 s)
RECENT = 2000  # valid clicks a duplicate may copy

# (make an invalid element from a timestamp and a serial number, its reason code). Each
# element is unique (its serial), so a dead letter published twice is recognised:
# dead letters are at least once (dead_letters.py) when a worker dies before its ack.
INVALID_ELEMENTS: list[tuple[Any, str]] = [
    (lambda at, n: {"ad_id": "ad-1", "clicked_at": at, "serial": n}, "missing_field"),
    (lambda at, n: {"click_id": f"bad-{n}", "ad_id": ["x"], "clicked_at": at}, "wrong_type"),
    (lambda at, n: {"click_id": f"bad-{n}", "ad_id": "ad-1", "clicked_at": at + 86_400},
     "future_timestamp"),
    (lambda at, n: {"click_id": f"bad-{n}", "ad_id": "ad-1", "clicked_at": at, "ip": "1.2.3"},
     "bad_value"),
    (lambda at, n: {"click_id": "c" * 65, "ad_id": "ad-1", "clicked_at": at, "serial": n},
     "bad_length"),
    (lambda at, n: f"not an object {n}", "not_object"),
]
NOT_JSON_CODE = "invalid_json"


def minute_of(epoch_seconds: float) -> int:
    """The test's own bucketing: the start of the UTC minute, in epoch seconds."""
    return int(epoch_seconds // MINUTE) * MINUTE


@dataclass
class ClickFeed:
    """Clicks to publish, and exactly what a correct pipeline makes of them."""

    seed: int = 1
    prefix: str = "chaos"
    ads: int = 300
    clicks_per_message: int = 50
    spread_seconds: float = 30.0
    min_age_seconds: float = 10.0
    duplicate_share: float = 0.02
    late_share: float = 0.02
    invalid_share: float = 0.002
    not_json_share: float = 0.001  # of messages
    # Truth, updated as the publisher takes messages:
    expected: Counter[tuple[int, str]] = field(default_factory=Counter)  # (minute, ad) -> n
    invalid_codes: Counter[str] = field(default_factory=Counter)  # reason code -> dead letters
    valid_clicks: int = 0  # distinct valid click ids: <prefix>-0 .. <prefix>-(n-1)
    elements: int = 0  # click objects sent, duplicates and invalid ones included
    messages: int = 0
    runs_in_progress: int = 0  # FeedRuns whose publisher has not returned yet

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._weights = zipf_cumulative_weights(self.ads, 1.1)
        self._invalid_serial = 0
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT)
        self._lock = threading.Lock()  # take() runs on the publisher's thread

    def ad_ids(self) -> list[str]:
        return [f"ad-{rank}" for rank in range(self.ads)]

    def message(self, now: float) -> bytes:
        """One message body; its clicks are added to the truth."""
        with self._lock:
            self.messages += 1
            if self._rng.random() < self.not_json_share:
                self.invalid_codes[NOT_JSON_CODE] += 1
                return b"{this is not json %d" % self.messages
            elements = [self._element(now) for _ in range(self.clicks_per_message)]
            self.elements += len(elements)
            return json.dumps(elements).encode()

    def _element(self, now: float) -> Any:
        roll = self._rng.random()
        if roll < self.invalid_share:
            make, code = self._rng.choice(INVALID_ELEMENTS)
            self.invalid_codes[code] += 1
            self._invalid_serial += 1
            return make(round(now, 3), self._invalid_serial)
        roll -= self.invalid_share
        if roll < self.duplicate_share and self._recent:
            return self._rng.choice(self._recent)  # counted once: it is already in the truth
        roll -= self.duplicate_share
        if roll < self.late_share:
            at = now - self._rng.uniform(*LATE_SECONDS)
        else:
            at = now - self.min_age_seconds - self._rng.uniform(0.0, self.spread_seconds)
        rank = bisect.bisect_left(self._weights, self._rng.random() * self._weights[-1])
        ad_id, clicked_at = f"ad-{rank}", round(at, 3)
        click = {"click_id": f"{self.prefix}-{self.valid_clicks}", "ad_id": ad_id,
                 "clicked_at": clicked_at}
        self.valid_clicks += 1
        # Counted by the rounded time the message carries, as the pipeline sees it.
        self.expected[(minute_of(clicked_at), ad_id)] += 1
        self._recent.append(click)
        return click

    def minutes(self) -> list[int]:
        return sorted({minute for minute, _ in self.expected})

    def start_publishing(self, stack: Stack, *, clicks: int, rate: float = 0.0,
                         max_backoff: float = 2.0, amqp_url: str | None = None) -> FeedRun:
        """Publish about ``clicks`` click elements (whole messages) in the background.

        ``rate`` is clicks per second offered (0: as fast as the broker confirms);
        ``amqp_url`` (default: the stack's) picks the broker node(s) to publish to.
        """
        run = FeedRun(self, amqp_url or stack.settings.amqp_url, clicks, rate, max_backoff,
                      topology.QueueType.of(stack.settings))
        run.start()
        return run

    def publish(self, stack: Stack, *, clicks: int, rate: float = 0.0,
                timeout: float = 600.0) -> PublishStats:
        """Publish and wait until every message is confirmed."""
        return self.start_publishing(stack, clicks=clicks, rate=rate).wait(timeout)


class FeedRun:
    """One background publishing run of a feed: a thread around ConfirmingPublisher."""

    def __init__(self, feed: ClickFeed, amqp_url: str, clicks: int, rate: float,
                 max_backoff: float, queue_type: topology.QueueType) -> None:
        self.feed = feed
        self.remaining_messages = -(-clicks // feed.clicks_per_message)
        per_message = rate / feed.clicks_per_message
        self.bucket = TokenBucket(per_message, time.monotonic()) if rate else None
        self.publisher = ConfirmingPublisher(amqp_url, self, queue_type=queue_type, window=2000,
                                             channels=2, max_backoff=max_backoff)
        self.error: BaseException | None = None
        self.stats: PublishStats | None = None
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="click-feed", daemon=True)

    # -- farloom_tasks.stores.click_source.Source ------------------------------------------------
    def take(self, limit: int, now: float) -> list[Outgoing] | float | None:
        if self.remaining_messages <= 0:
            return None
        wanted = min(limit, self.remaining_messages)
        if self.bucket is not None:
            granted = self.bucket.take(wanted, now)
            if isinstance(granted, float):
                return granted
            wanted = granted
        self.remaining_messages -= wanted
        wall = time.time()
        return [Outgoing(self.feed.message(wall), self.feed.clicks_per_message)
                for _ in range(wanted)]

    def confirmed(self, messages: list[Outgoing]) -> None:
        pass  # truth was recorded at take(); the publisher never abandons a taken message

    # -- control ---------------------------------------------------------------
    def start(self) -> None:
        with self.feed._lock:
            self.feed.runs_in_progress += 1
        self._thread.start()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Take no more; what was taken is still confirmed before ``wait`` returns."""
        # Only once: a second stop() makes the publisher abandon unconfirmed messages.
        if not self.done() and not self._stopped:
            self._stopped = True
            self.publisher.stop()

    def wait(self, timeout: float = 600.0) -> PublishStats:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"the feed was not confirmed within {timeout:.0f} s "
                                 f"({self.remaining_messages} messages not yet taken)")
        if self.error is not None:
            raise AssertionError(f"the feed's publisher failed: {self.error!r}")
        assert self.stats is not None
        return self.stats

    def _run(self) -> None:
        try:
            self.stats = self.publisher.run()
        except BaseException as exc:  # reported by wait()
            self.error = exc
        finally:
            with self.feed._lock:
                self.feed.runs_in_progress -= 1
