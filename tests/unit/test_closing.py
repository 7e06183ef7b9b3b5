"""The pure parts of closing, replay's source choice and the failpoint spec."""

from __future__ import annotations

import pytest

from farloom_tasks import failpoints
from farloom_tasks.core import replay_source
from farloom_tasks.core.attempts import Attempt
from farloom_tasks.core.redis_horizon import redis_is_complete
from farloom_tasks.core.windows import MINUTE

MINUTE_0 = 1_800_000_000 - 1_800_000_000 % MINUTE
RETENTION = 7200.0
SKEW = 300.0


def test_a_recent_minute_can_be_read_from_redis() -> None:
    assert redis_is_complete(MINUTE_0, MINUTE_0 + 70, SKEW, RETENTION)


def test_a_minute_some_of_whose_keys_may_have_expired_goes_back_to_raw() -> None:
    # The earliest write (skew seconds before the minute) expires at that + retention.
    horizon = MINUTE_0 - SKEW + RETENTION
    assert redis_is_complete(MINUTE_0, horizon - 121, SKEW, RETENTION)
    assert not redis_is_complete(MINUTE_0, horizon - 119, SKEW, RETENTION)
    assert not redis_is_complete(MINUTE_0, MINUTE_0 + 10 * RETENTION, SKEW, RETENTION)


@pytest.mark.parametrize(("present", "complete", "chosen"), [
    (True, True, "redis"), (False, True, "raw"), (True, False, "raw"), (False, False, "raw")])
def test_auto_reads_redis_only_when_the_minute_is_there_and_complete(
        present: bool, complete: bool, chosen: str) -> None:
    assert replay_source.choose_source("auto", present_in_redis=present,
                                redis_complete=complete) == chosen


def test_an_explicit_source_is_taken_as_asked() -> None:
    assert replay_source.choose_source("raw", present_in_redis=True, redis_complete=True) == "raw"
    assert replay_source.choose_source("redis", present_in_redis=False,
                                redis_complete=False) == "redis"


def test_an_unknown_source_is_refused_with_the_choices() -> None:
    with pytest.raises(replay_source.ReplayRefused, match="auto, redis, raw"):
        replay_source.choose_source("disk", present_in_redis=True, redis_complete=True)


def test_an_attempt_travels_as_json_with_its_late_mark() -> None:
    attempt = Attempt(MINUTE_0, 42, 7)
    assert attempt.to_json() == {"minute": MINUTE_0, "revision": 42, "mark_seq": 7}


def test_a_failpoint_spec_names_points_with_optional_budgets() -> None:
    assert failpoints.parse("topk_shard:2, merge_minute ,") == {
        "topk_shard": 2, "merge_minute": 0}
    assert failpoints.parse("") == {}


@pytest.mark.parametrize("spec", ["topk_shard:x", ":3", "a:-1"])
def test_a_malformed_failpoint_spec_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="name or name:count"):
        failpoints.parse(spec)


def test_an_unlisted_failpoint_does_no_io() -> None:
    failpoints.hit({"other": 1}, "topk_shard", "0.0", client=None)
