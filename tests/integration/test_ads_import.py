"""``farloom ads import`` against a real database: fills agg.ads, idempotent, never
changes a known owner, reports contradicting and malformed lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from farloom_tasks.core.ad_owners import Owner
from farloom_tasks.pipeline import ads_import
from tests.support.database import sql
from tests.support.stack import PROJECT_ROOT, Stack

HEADER = "ad_id,campaign_id,advertiser_id\n"


def _import(stack: Stack, path: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "farloom_tasks.cli", "ads", "import", path],
                          env=stack.env, cwd=PROJECT_ROOT, text=True, input=stdin,
                          capture_output=True, timeout=60)


def _catalog(stack: Stack) -> dict[str, Owner]:
    return {ad: Owner(campaign, advertiser) for ad, campaign, advertiser in sql(
        stack, "SELECT ad_id, campaign_id, advertiser_id FROM agg.ads")}


def test_a_good_file_fills_the_catalog_and_a_rerun_changes_nothing(
        stack: Stack, tmp_path: Path) -> None:
    rows = [(f"ad-{n}", f"camp-{n // 10}", f"adv-{n // 50}") for n in range(12_000)]
    path = tmp_path / "ads.csv"
    path.write_text(HEADER + "".join(f"{a},{c},{v}\n" for a, c, v in rows), encoding="utf-8")

    first = _import(stack, str(path))
    again = _import(stack, str(path))

    assert first.returncode == 0, first.stderr[-2000:]
    assert "12000 rows: 12000 ads new, 0 owners filled" in first.stdout
    assert "row" in first.stderr  # the progress bar
    assert again.returncode == 0 and "12000 rows: 0 ads new, 0 owners filled" in again.stdout
    assert _catalog(stack) == {a: Owner(c, v) for a, c, v in rows}
    assert len(rows) > 2 * ads_import.CHUNK_ROWS  # the file spans several transactions


def test_contradicting_rows_are_reported_and_change_no_known_owner(stack: Stack) -> None:
    sql(stack, "INSERT INTO agg.ads (ad_id, campaign_id, advertiser_id) VALUES "
               "('known', 'camp-1', 'adv-1'), ('partial', 'camp-2', NULL)")
    text = HEADER + ("known,camp-9,adv-1\n"      # line 2: contradicts the catalog
                     "partial,camp-2,adv-2\n"    # line 3: fills the advertiser
                     "new,camp-3,\n"             # line 4: a new ad, advertiser unknown
                     "new,camp-4,adv-4\n"        # line 5: contradicts line 4
                     "known,,adv-1\n")           # line 6: agrees

    done = _import(stack, "-", stdin=text)

    assert done.returncode == 1
    assert "5 rows: 1 ads new, 1 owners filled, 2 contradicting the catalog, 0 malformed" \
        in done.stdout
    assert "line 2: ad 'known' belongs to campaign 'camp-1'" in done.stderr
    assert "line 5: ad 'new' belongs to campaign 'camp-3'" in done.stderr
    assert _catalog(stack) == {"known": Owner("camp-1", "adv-1"),
                               "partial": Owner("camp-2", "adv-2"),
                               "new": Owner("camp-3", None)}


def test_malformed_lines_are_reported_by_number_and_the_rest_imported(
        stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "ads.csv"
    path.write_text(HEADER + "ok-1,c,a\nshort,c\n" + "x" * 65 + ",c,a\nok-2,c\x07,a\nok-3,c,a\n",
                    encoding="utf-8")

    done = _import(stack, str(path))

    assert done.returncode == 1
    assert "5 rows: 2 ads new, 0 owners filled, 0 contradicting the catalog, 3 malformed" \
        in done.stdout
    for line, reason in ((3, "2 cells"), (4, "bad_length"), (5, "bad_characters")):
        assert f"line {line}: " in done.stderr and reason in done.stderr
    assert set(_catalog(stack)) == {"ok-1", "ok-3"}


def test_a_file_without_the_header_writes_nothing(stack: Stack) -> None:
    done = _import(stack, "-", stdin="ad-1,c,a\n")
    assert done.returncode == 3 and "header must be" in done.stderr
    assert _catalog(stack) == {}
