"""The aggregated writer and the click publisher wait as they always did, through core.backoff."""

from __future__ import annotations

from farloom_tasks.stores import click_publisher, topology
from workers import aggregate_writer


def test_the_writer_doubles_from_a_fifth_of_a_second_up_to_ten_seconds_without_jitter() -> None:
    waits = [aggregate_writer.BACKOFF.delay(attempt) for attempt in range(9)]

    assert waits == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0, 10.0]


def test_the_click_publisher_doubles_from_half_a_second_up_to_its_max_backoff() -> None:
    publisher = click_publisher.ConfirmingPublisher(
        "amqp://guest:guest@127.0.0.1:5672/%2F", source=None,  # type: ignore[arg-type]
        queue_type=topology.CLASSIC, max_backoff=30.0)

    waits = [publisher._backoff.delay(attempt) for attempt in range(8)]

    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
