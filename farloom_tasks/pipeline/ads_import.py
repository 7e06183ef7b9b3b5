"""``farloom ads import``: fill the ads catalog from a CSV, never changing a known owner.

The rows go in chunks of CHUNK_ROWS, one transaction each, through the
catalog's locking protocol (stores/ads_catalog.py), so an import racing ingest
workers ends with one owner per ad like two workers do. Within the file the
first row naming an id wins, as the first click does in a batch. A rerun of
the same file changes nothing. Rows that contradict the catalog, and malformed
rows, change nothing either: they are counted and the first EXAMPLES of each
kept, with their line numbers, for the report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from farloom_tasks.core.ad_owners import Claim, settle_claims
from farloom_tasks.core.ads_csv import Malformed, read_claims
from farloom_tasks.stores import ads_catalog
from farloom_tasks.stores.db import Engine
from farloom_tasks.stores.transactions import transaction

CHUNK_ROWS = 5000  # rows per transaction: locks held briefly, round trips amortised
EXAMPLES = 5  # contradicting and malformed rows quoted in the report, each


@dataclass
class ImportReport:
    rows: int = 0  # data rows read, malformed ones included
    new_ads: int = 0  # ads the import gave a catalog row
    filled: int = 0  # ads that already had a row and learned an id from the file
    contradictions: int = 0
    malformed: int = 0
    contradiction_examples: list[str] = field(default_factory=list)
    malformed_examples: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.contradictions or self.malformed)


def import_ads(engine: Engine, lines: Iterable[str],
               progress: Callable[[int], object] = lambda rows: None) -> ImportReport:
    """Import the CSV ``lines`` (see core/ads_csv.py); ``progress(rows)`` after each chunk.

    Raises ads_csv.BadHeader before anything is written if the header is wrong.
    """
    report = ImportReport()
    chunk: list[Claim] = []
    for item in read_claims(lines):
        report.rows += 1
        if isinstance(item, Malformed):
            report.malformed += 1
            if len(report.malformed_examples) < EXAMPLES:
                report.malformed_examples.append(f"line {item.line}: {item.reason}")
        else:
            chunk.append(item)
        if report.rows % CHUNK_ROWS == 0:
            _write(engine, chunk, report)
            chunk = []
            progress(CHUNK_ROWS)
    _write(engine, chunk, report)
    progress(report.rows % CHUNK_ROWS)
    return report


def _write(engine: Engine, claims: list[Claim], report: ImportReport) -> None:
    if not claims:
        return
    proposed = settle_claims(claims, {}).owners
    with transaction(engine) as cursor:
        locked = ads_catalog.lock_owners(cursor, proposed)
        settled = settle_claims(claims, locked.owners)
        report.filled += len({ad for ad, owner in settled.owners.items()
                              if ad not in locked.created and locked.owners[ad] != owner})
        ads_catalog.fill_owners(cursor, locked.owners, settled.owners)
    report.new_ads += len(locked.created)
    report.contradictions += len(settled.contradictions)
    for claim, known in settled.contradictions:
        if len(report.contradiction_examples) >= EXAMPLES:
            break
        report.contradiction_examples.append(
            f"line {claim.line}: ad {claim.ad_id!r} belongs to {known.describe()}; the file "
            f"says {claim.owner.describe()}")
