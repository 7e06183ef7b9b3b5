"""The bad-deploy alarm: a nearly all-invalid batch is reported, at most once a minute."""

from __future__ import annotations

from farloom_tasks.core.batching import Batch
from farloom_tasks.core.clicks import Rejection
from farloom_tasks.core.messages import DeadLetter
from farloom_tasks.metrics.bad_deploy import ALARM_SECONDS, BadDeployAlarm


def _batch(valid: int, invalid: int, code: str = "missing_field") -> Batch:
    return Batch(messages=1, clicks_received=valid,
                 dead_letters=[DeadLetter(b"{}", Rejection(code, "d")) for _ in range(invalid)])


def test_a_batch_that_is_nearly_all_invalid_raises_the_alarm_with_its_reasons() -> None:
    message = BadDeployAlarm().check(_batch(5, 95), now=1000.0)
    assert message is not None
    assert message.startswith("95 of 100 clicks in one batch were invalid (missing_field=95)")


def test_a_mostly_valid_or_small_batch_raises_nothing() -> None:
    alarm = BadDeployAlarm()
    assert alarm.check(_batch(20, 80), now=1000.0) is None
    assert alarm.check(_batch(0, 99), now=1000.0) is None


def test_the_alarm_is_raised_at_most_once_per_alarm_period() -> None:
    alarm = BadDeployAlarm()
    assert alarm.check(_batch(0, 200), now=1000.0) is not None
    assert alarm.check(_batch(0, 200), now=1000.0 + ALARM_SECONDS - 1) is None
    assert alarm.check(_batch(0, 200), now=1000.0 + ALARM_SECONDS) is not None
