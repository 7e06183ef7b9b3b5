"""The CSV of ``farloom ads import``: rows of (ad_id, campaign_id, advertiser_id). Pure.

The first line is the header ``ad_id,campaign_id,advertiser_id``. An empty
campaign or advertiser cell says nothing about it (the owner stays unknown, or
as the catalog knows it). A row with another number of cells, or an id the
click contract would refuse (core/clicks.py: 1-64 printable characters), is
malformed and reported by its line number; the other rows still count.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from farloom_tasks.core.ad_owners import Claim, Owner
from farloom_tasks.core.clicks import catalog_row_rejection
from farloom_tasks.errors import FarloomError

HEADER = ("ad_id", "campaign_id", "advertiser_id")


class BadHeader(FarloomError):
    """The file does not start with the ads CSV header."""


@dataclass(frozen=True, slots=True)
class Malformed:
    line: int
    reason: str


def read_claims(lines: Iterable[str]) -> Iterator[Claim | Malformed]:
    """Each data row of the CSV as a Claim, or as Malformed with the reason.

    Raises BadHeader when the first row is not HEADER. ``line`` is the line the
    row ends on (a quoted cell may span lines), counting the header as line 1.
    """
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise BadHeader(f"the file is empty; it must start with {','.join(HEADER)}") from None
    except csv.Error as exc:
        raise BadHeader(f"line 1: {exc}") from None
    if tuple(cell.strip().lower() for cell in header) != HEADER:
        raise BadHeader(f"line 1 is {','.join(header)[:200]!r}; the header must be "
                        f"{','.join(HEADER)}")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Malformed(reader.line_num, f"not CSV: {exc}")
            continue
        if not row:
            continue  # a blank line
        yield _claim(reader.line_num, row)


def _claim(line: int, row: list[str]) -> Claim | Malformed:
    if len(row) != len(HEADER):
        return Malformed(line, f"{len(row)} cells; a row has {len(HEADER)} "
                               f"({','.join(HEADER)})")
    ad_id, campaign_id, advertiser_id = row[0], row[1] or None, row[2] or None
    rejection = catalog_row_rejection(ad_id, campaign_id, advertiser_id)
    if rejection is not None:
        return Malformed(line, str(rejection))
    return Claim(line, ad_id, Owner(campaign_id, advertiser_id))
