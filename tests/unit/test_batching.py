"""The ingest batch: flush on size, on age, dedup by click id (first wins), in delivery order."""

from __future__ import annotations

import pytest

from farloom_tasks.core.batching import QUIET_FLUSH_SECONDS, Batcher
from farloom_tasks.core.clicks import Click, Rejection
from farloom_tasks.core.messages import DeadLetter, DecodedMessage

T0 = 1_800_000_000.0


def _message(*click_ids: str, ad: str = "a", dead: int = 0) -> DecodedMessage:
    return DecodedMessage(
        clicks=[Click(c, ad, T0 - 30) for c in click_ids],
        dead_letters=[DeadLetter(b"{}", Rejection("missing_field", "click_id is required"), i)
                      for i in range(dead)],
    )


def test_an_empty_batcher_is_never_due() -> None:
    batcher = Batcher(max_items=10, max_age_seconds=0.2)
    assert not batcher.should_flush(T0 + 3600)
    assert batcher.seconds_until_due(T0) is None


def test_a_batch_is_due_once_it_holds_max_items() -> None:
    batcher = Batcher(max_items=4, max_age_seconds=60)
    batcher.add(1, _message("c1", "c2"), None, T0)
    assert not batcher.should_flush(T0)
    batcher.add(2, _message("c3", dead=1), None, T0)
    assert batcher.should_flush(T0)


def test_a_partial_batch_is_due_when_its_oldest_delivery_reaches_max_age() -> None:
    batcher = Batcher(max_items=1000, max_age_seconds=0.25)
    # A steady stream, a delivery every 10 ms: never quiet, so only age makes it due.
    for n in range(25):
        batcher.add(n + 1, _message(f"c{n}"), None, T0 + n * 0.01)
    now = T0 + 0.245
    assert not batcher.should_flush(now)
    assert batcher.seconds_until_due(now) == pytest.approx(0.005, abs=1e-6)
    batcher.add(26, _message("c25"), None, T0 + 0.25)
    assert batcher.should_flush(T0 + 0.25)
    assert batcher.seconds_until_due(T0 + 1) == 0.0


def test_a_partial_batch_is_due_once_the_stream_is_quiet() -> None:
    batcher = Batcher(max_items=1000, max_age_seconds=10)
    batcher.add(1, _message("c1"), None, T0)
    batcher.add(2, _message("c2"), None, T0 + 0.01)
    assert not batcher.should_flush(T0 + 0.01 + QUIET_FLUSH_SECONDS / 2)
    assert batcher.seconds_until_due(T0 + 0.01) == pytest.approx(QUIET_FLUSH_SECONDS, abs=1e-6)
    assert batcher.should_flush(T0 + 0.011 + QUIET_FLUSH_SECONDS)


def test_a_partial_batch_is_due_when_no_more_deliveries_can_arrive() -> None:
    # The prefetch window is full: waiting for size or age would only waste time.
    batcher = Batcher(max_items=1000, max_age_seconds=10)
    batcher.add(1, _message("c1"), None, T0)
    assert not batcher.should_flush(T0)
    assert batcher.should_flush(T0, more_can_arrive=False)


def test_a_message_without_clicks_still_makes_the_batch_due_by_age() -> None:
    batcher = Batcher(max_items=1000, max_age_seconds=0.2)
    batcher.add(7, DecodedMessage(), None, T0)
    assert batcher.should_flush(T0 + 0.2)
    assert batcher.take().last_delivery_tag == 7


def test_repeated_click_ids_keep_the_first_and_are_counted_as_duplicates() -> None:
    batcher = Batcher(max_items=1000, max_age_seconds=1)
    batcher.add(1, DecodedMessage(clicks=[Click("x", "first", T0), Click("x", "again", T0)]),
                None, T0)
    batcher.add(2, DecodedMessage(clicks=[Click("x", "later", T0), Click("y", "b", T0)]),
                None, T0)
    batch = batcher.take()
    assert [(c.click_id, c.ad_id) for c in batch.clicks] == [("x", "first"), ("y", "b")]
    assert (batch.clicks_received, batch.duplicates_in_batch) == (4, 2)


def test_clicks_are_handed_over_sorted_by_click_id() -> None:
    batcher = Batcher(max_items=1000, max_age_seconds=1)
    batcher.add(1, _message("m", "b", "z", "a"), None, T0)
    assert [c.click_id for c in batcher.take().clicks] == ["a", "b", "m", "z"]


def test_take_hands_over_the_last_tag_dead_letters_and_stamps_then_starts_afresh() -> None:
    batcher = Batcher(max_items=1000, max_age_seconds=1)
    batcher.add(3, _message("c1", dead=2), T0 - 1.5, T0)
    batcher.add(4, _message("c2"), None, T0)
    batcher.add(5, _message(dead=1), T0 - 0.5, T0)
    batch = batcher.take()
    assert (batch.last_delivery_tag, batch.messages) == (5, 3)
    assert len(batch.dead_letters) == 3
    assert batch.published_at == [T0 - 1.5, T0 - 0.5]
    assert len(batcher) == 0
    assert not batcher.should_flush(T0 + 100)
    batcher.add(6, _message("c1"), None, T0 + 1)
    assert [c.click_id for c in batcher.take().clicks] == ["c1"]  # dedup does not span batches


def test_discard_drops_the_batch_and_reports_its_messages() -> None:
    batcher = Batcher(max_items=1000, max_age_seconds=1)
    batcher.add(1, _message("c1"), None, T0)
    batcher.add(2, _message("c2"), None, T0)
    assert batcher.discard() == 2
    assert len(batcher) == 0



def test_a_click_id_at_another_time_is_kept_and_only_same_time_copies_are_duplicates() -> None:
    batcher = Batcher(max_items=100, max_age_seconds=1.0)
    earlier, later = Click("x", "a", T0 - 7200), Click("x", "a", T0 - 30)
    batcher.add(1, DecodedMessage(clicks=[later, earlier, later], dead_letters=[]), None, T0)
    batch = batcher.take()
    assert batch.clicks == [earlier, later]
    assert batch.duplicates_in_batch == 1
