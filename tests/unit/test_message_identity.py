"""The identity of a click message: stable on redelivery, different between messages."""

from __future__ import annotations

from farloom_tasks.core.message_identity import (
    WHOLE_MESSAGE,
    click_identity,
    dead_letter_message_id,
    ledger_index,
    source_identity,
)

BODY = b'[{"click_id": "a"}, {"click_id": "b"}]'


def test_a_message_id_is_the_identity_whatever_else_the_message_carries() -> None:
    assert source_identity("m-1", 5, 17, BODY) == "amqp:m-1"
    assert source_identity("m-1", None, None, b"other") == "amqp:m-1"
    assert source_identity("m-2", 5, 17, BODY) != "amqp:m-1"


def test_an_overlong_message_id_is_hashed_into_a_bounded_identity() -> None:
    long_id = "x" * 300
    identity = source_identity(long_id, None, None, BODY)
    assert identity.startswith("amqp-sha256:") and len(identity) < 100
    assert identity != source_identity("x" * 301, None, None, BODY)


def test_without_a_message_id_the_same_message_delivered_again_has_the_same_identity() -> None:
    assert source_identity(None, 5, 17, BODY) == source_identity(None, 5, 17, BODY)
    assert source_identity("", 5, 17, BODY) == source_identity(None, 5, 17, BODY)


def test_without_a_message_id_any_difference_makes_another_message() -> None:
    seen = {source_identity(None, 5, 17, BODY), source_identity(None, 6, 17, BODY),
            source_identity(None, 5, 18, BODY), source_identity(None, 5, 17, BODY + b" "),
            source_identity(None, None, 17, BODY), source_identity(None, 5, None, BODY),
            source_identity(None, 5, b"17", BODY)}
    assert len(seen) == 7


def test_parts_cannot_run_into_each_other() -> None:
    # Length prefixes: moving bytes from one part to the next changes the identity.
    assert source_identity(None, 12, 3, BODY) != source_identity(None, 1, 23, BODY)
    assert source_identity(None, None, "ab", b"c") != source_identity(None, None, "a", b"bc")


def test_a_dead_letters_message_id_follows_its_source_and_index() -> None:
    source = source_identity(None, 5, 17, BODY)
    assert dead_letter_message_id(source, 1) == dead_letter_message_id(source, 1)
    ids = {dead_letter_message_id(source, 0), dead_letter_message_id(source, 1),
           dead_letter_message_id(source, None), dead_letter_message_id("amqp:m-1", 1)}
    assert len(ids) == 4
    assert all(len(i) < 256 for i in ids)  # an AMQP shortstr


def test_a_whole_message_has_the_ledger_index_minus_one() -> None:
    assert ledger_index(None) == WHOLE_MESSAGE == -1
    assert ledger_index(0) == 0 and ledger_index(7) == 7


def test_a_refused_click_is_known_by_its_click_id_and_time() -> None:
    assert click_identity("c", 1.5) == click_identity("c", 1.5)
    assert len({click_identity("c", 1.5), click_identity("c", 2.5),
                click_identity("d", 1.5)}) == 3
    assert click_identity("\ud800", 1.0).startswith("click-sha256:")  # unpaired surrogate
