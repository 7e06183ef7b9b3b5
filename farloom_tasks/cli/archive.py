"""``farloom archive``: list the partitions retention dropped, restore an archived one."""

from __future__ import annotations

import argparse
from pathlib import Path

from farloom_tasks.core.windows import iso
from farloom_tasks.settings import Settings
from farloom_tasks.stores import db, partition_drops
from farloom_tasks.stores.partitions import RAW_CLICKS
from farloom_tasks.stores.transactions import transaction


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Raw partitions dropped by retention (FARLOOM_RAW_RETENTION_DAYS) are archived\n"
        "first when FARLOOM_ARCHIVE_DIR is set: a .copy.gz data file and a\n"
        ".manifest.json with its row count and sha256.\n\n"
        "examples:\n"
        "  farloom archive list\n"
        "  farloom archive restore /var/lib/farloom/archive/"
        "raw.ad_clicks_20261202T1300Z_20261202T1400Z.manifest.json")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="every partition retention dropped or a restore put back")
    restore = actions.add_parser(
        "restore", help="put an archived partition back, exactly (checksum and count checked)")
    restore.add_argument("file", metavar="FILE", type=Path,
                         help="the archive's .manifest.json (or its .copy.gz data file)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "list":
        return _list(settings)
    return _restore(args.file, settings)


def _restore(path: Path, settings: Settings) -> int:
    from farloom_tasks.pipeline import archive_restore

    engine = db.make_engine(settings.database_url, pool_size=1)
    try:
        done = archive_restore.restore(engine, path)
    finally:
        engine.dispose()
    first, last = iso(done.range_start), iso(done.range_end - 60)
    print(f"restored {done.rows} rows into {done.partition} [{iso(done.range_start)}, "
          f"{iso(done.range_end)}), sha256 {done.sha256} verified; retention will not drop "
          "it again")
    if done.table == RAW_CLICKS:
        print("agg is unchanged: to recompute those minutes from the restored raw rows "
              f"(while their per-minute results are kept), run:\n"
              f"  farloom replay {first} {last} --source raw --wait")
    return 0


def _list(settings: Settings) -> int:
    engine = db.make_engine(settings.database_url, pool_size=1)
    try:
        with transaction(engine) as cursor:
            ledger = [e for e in partition_drops.entries(cursor)
                      if e.dropped_at is not None or e.restored_at is not None]
    finally:
        engine.dispose()
    if not ledger:
        print("no partition has been dropped by retention")
        return 0
    for e in ledger:
        state = (f"dropped {iso(int(e.dropped_at))}" if e.dropped_at is not None
                 else f"restored {iso(int(e.restored_at or 0))}")
        kept = (f"archive {e.archive_file} ({e.archived_rows} rows)" if e.archive_file
                else "no archive")
        print(f"{e.parent} [{iso(e.range.start)}, {iso(e.range.end)}) {state}, {kept}")
    return 0
