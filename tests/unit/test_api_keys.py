"""core.api_keys: the key format, its parsing, the bearer header and the digest check."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from farloom_tasks.core import api_keys as keys


def test_a_generated_key_reads_back_as_itself_and_keys_differ() -> None:
    made = [keys.generate() for _ in range(50)]

    assert all(keys.parse(str(key)) == key for key in made)
    assert len({key.key_id for key in made}) == len({key.secret for key in made}) == 50
    assert all(str(key).startswith(f"flk_{key.key_id}_") for key in made)


def test_the_digest_is_the_sha256_of_the_secret_and_only_the_right_secret_matches() -> None:
    key = keys.generate()
    other = keys.generate()
    stored = keys.digest(key.secret)

    assert stored == hashlib.sha256(key.secret.encode()).digest() and len(stored) == 32
    assert keys.matches(key, stored)
    assert not keys.matches(keys.ApiKey(key.key_id, other.secret), stored)
    assert not keys.matches(key, bytes(32))


def test_a_keys_repr_hides_its_secret() -> None:
    key = keys.generate()

    assert key.secret not in repr(key) and key.key_id in repr(key)


@pytest.mark.parametrize("text", [
    "", "flk", "flk__", "hunter2",
    "flk_0123456789abcdef_" + "a" * 42,  # a character short
    "flk_0123456789abcdef_" + "a" * 44,  # one too many
    "flk_0123456789ABCDEF_" + "a" * 43,  # the id is lowercase hex
    "flk_0123456789abcde_" + "a" * 44,  # the id is 16 characters
    "FLK_0123456789abcdef_" + "a" * 43,
    "xyz_0123456789abcdef_" + "a" * 43,
    "flk_0123456789abcdef_" + "a" * 42 + "=",  # not the URL-safe alphabet
    " flk_0123456789abcdef_" + "a" * 43,
    "flk_0123456789abcdef_" + "a" * 43 + "\n",
])
def test_anything_but_a_whole_key_is_not_a_key(text: str) -> None:
    assert keys.parse(text) is None


def test_a_secret_may_hold_the_separator_itself() -> None:
    key = keys.parse("flk_0123456789abcdef_" + "_-" * 21 + "a")

    assert key == keys.ApiKey("0123456789abcdef", "_-" * 21 + "a")


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer abc", "abc"),
    ("bearer abc", "abc"),  # the scheme is case-insensitive (RFC 7235)
    ("BEARER   abc  ", "abc"),
    (None, None),
    ("", None),
    ("Bearer", None),
    ("Bearer ", None),
    ("Basic abc", None),
    ("Bearer abc def", None),
    ("Bearerabc", None),
    ("Token abc", None),
])
def test_the_bearer_token_is_read_from_the_authorization_header_only_when_it_is_one(
        header: str | None, token: str | None) -> None:
    assert keys.bearer_token(header) == token


@given(st.text(max_size=80))
def test_parsing_never_raises(text: str) -> None:
    keys.parse(text)
    keys.bearer_token(text)


def test_an_admin_caller_is_one_without_an_advertiser() -> None:
    assert keys.OPEN.is_admin and keys.Caller(None, "k").is_admin
    assert not keys.Caller("acme", "k").is_admin
