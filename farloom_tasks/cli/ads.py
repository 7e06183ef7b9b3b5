"""``farloom ads import FILE``: fill the ads catalog, agg.ads, from a CSV (pipeline/ads_import)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO

from tqdm import tqdm

from farloom_tasks.core.ads_csv import HEADER
from farloom_tasks.settings import Settings
from farloom_tasks.stores import db

# Exit codes: 0 every row imported or already known; 1 some rows contradicted the
# catalog or were malformed (the others were imported); 3 a Farloom error (cli.main).
ROWS_REFUSED = 1


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "The ads catalog: each ad's campaign and advertiser. Clicks fill it as they are\n"
        "ingested; an import fills it ahead of them. An owner once known never changes:\n"
        "a row naming another one is reported and skipped, and so is a click.\n\n"
        "examples:\n"
        "  farloom ads import ads.csv\n"
        "  some-export | farloom ads import -")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    load = actions.add_parser(
        "import", help="fill agg.ads from a CSV; idempotent, never changes a known owner",
        description=f"CSV with the header {','.join(HEADER)}; an empty campaign or "
                    "advertiser cell leaves it unknown. Exits 1 if any row contradicted the "
                    "catalog or was malformed (the other rows are imported).")
    load.add_argument("file", metavar="FILE", help="the CSV file, or - for stdin")
    load.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from farloom_tasks.pipeline.ads_import import import_ads

    engine = db.make_engine(settings.database_url, pool_size=1)
    handle: IO[str] = (sys.stdin if args.file == "-"
                       else open(Path(args.file), encoding="utf-8", newline=""))  # noqa: SIM115
    try:
        with tqdm(desc="ads", unit="row", file=sys.stderr, disable=args.no_progress) as bar:
            report = import_ads(engine, handle, bar.update)
    finally:
        if handle is not sys.stdin:
            handle.close()
        engine.dispose()
    print(f"{report.rows} rows: {report.new_ads} ads new, {report.filled} owners filled, "
          f"{report.contradictions} contradicting the catalog, {report.malformed} malformed")
    if report.contradictions:
        print(f"{report.contradictions} rows contradict the catalog (an owner never changes; "
              "fix a wrong one in agg.ads by SQL, then restart the ingest workers):",
              file=sys.stderr)
        for example in report.contradiction_examples:
            print(f"  {example}", file=sys.stderr)
    if report.malformed:
        print(f"{report.malformed} rows are malformed:", file=sys.stderr)
        for example in report.malformed_examples:
            print(f"  {example}", file=sys.stderr)
    return 0 if report.clean else ROWS_REFUSED
