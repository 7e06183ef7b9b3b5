"""The ads catalog CSV: a header, three cells a row, ids under the click contract's rules."""

from __future__ import annotations

import pytest

from farloom_tasks.core.ad_owners import Claim, Owner
from farloom_tasks.core.ads_csv import BadHeader, Malformed, read_claims


def _read(text: str) -> list[Claim | Malformed]:
    return list(read_claims(text.splitlines(keepends=True)))


def test_rows_become_claims_with_their_line_numbers_and_empty_cells_unknown() -> None:
    assert _read("ad_id,campaign_id,advertiser_id\nad-1,c-1,a-1\n\nad-2,,a-2\nad-3,,\n") == [
        Claim(2, "ad-1", Owner("c-1", "a-1")), Claim(4, "ad-2", Owner(None, "a-2")),
        Claim(5, "ad-3", Owner())]


def test_a_quoted_cell_may_hold_a_comma() -> None:
    assert _read('ad_id,campaign_id,advertiser_id\n"ad,1","c 1",a\n') == [
        Claim(2, "ad,1", Owner("c 1", "a"))]


@pytest.mark.parametrize(("row", "reason"), [
    ("ad-1,c-1", "2 cells"),
    ("ad-1,c-1,a-1,extra", "4 cells"),
    (",c-1,a-1", "bad_length"),
    ("ad-1," + "c" * 65 + ",a", "bad_length"),
    ("ad-1,c\t1,a", "bad_characters"),
    ("ad-1,c,\x07", "bad_characters"),
])
def test_a_malformed_row_is_reported_by_line_and_its_neighbours_still_read(
        row: str, reason: str) -> None:
    found = _read(f"ad_id,campaign_id,advertiser_id\nok,c,a\n{row}\nok2,c,a\n")
    assert found[0] == Claim(2, "ok", Owner("c", "a"))
    assert isinstance(found[1], Malformed) and found[1].line == 3 and reason in found[1].reason
    assert found[2] == Claim(4, "ok2", Owner("c", "a"))


@pytest.mark.parametrize("text", ["", "ad,campaign,advertiser\n", "ad_id,campaign_id\n"])
def test_a_file_without_the_header_is_refused_whole(text: str) -> None:
    with pytest.raises(BadHeader):
        _read(text)
