"""``farloom import FILE``: load a CSV or NDJSON click file once (workers/import_file.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from farloom_tasks.settings import Settings
from workers.import_file import ImportOptions, import_clicks


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    parser.description = (
        "Load a CSV or NDJSON click file once into farloom.clicks, with confirms and a "
        "progress bar. Rows that cannot be mapped are listed with their line number and "
        "still published, so ingest dead-letters them with a reason.")
    parser.epilog = (
        "example (the TalkingData sample; its device column is a phone model id, not a "
        "device class, so it is the custom dimension device_model):\n"
        "  farloom import talkingdata_train_sample.csv --ad-column channel "
        "--time-column click_time \\\n"
        "      --campaign-column app --dimension device_model=device --dimension os\n"
        "When a campaign or advertiser column is mapped, the file is read once first: rows "
        "contradicting the owner an earlier row gave their ad are counted and quoted (ingest "
        "dead-letters them as ad_owner_mismatch) and the owners found are written into the "
        "ads catalog before anything is published. Exit codes: 0 published, 1 stopped by "
        "--refuse-owner-conflicts, 2 a bad file, column or flag.")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("file", type=Path, metavar="FILE", help="a .csv or .ndjson/.jsonl file")
    parser.add_argument("--format", choices=("auto", "csv", "ndjson"), default="auto",
                        help="file format (default: from the extension; .csv is CSV)")
    parser.add_argument("--ad-column", default="ad_id",
                        help="column holding the ad id (default ad_id)")
    parser.add_argument("--time-column", default="clicked_at",
                        help="column holding the click time; naive times are UTC "
                        "(default clicked_at)")
    parser.add_argument("--id-column", default=None,
                        help="column holding the click id (default: the 1-based row number)")
    parser.add_argument("--id-prefix", default="",
                        help="prefix for click ids made from row numbers, e.g. 'td-'")
    parser.add_argument("--user-column", default=None, help="column holding user_id")
    parser.add_argument("--ip-column", default=None, help="column holding ip")
    parser.add_argument("--country-column", default=None, help="column holding country")
    parser.add_argument("--device-column", default=None,
                        help="column holding the contract's device class (desktop, mobile, "
                             "tablet, tv, other); a column of other values is a --dimension")
    parser.add_argument("--campaign-column", default=None,
                        help="column holding campaign_id (an ad's campaign; see the "
                             "owner check below)")
    parser.add_argument("--advertiser-column", default=None,
                        help="column holding advertiser_id (an ad's advertiser)")
    parser.add_argument("--dimension", action="append", default=[], metavar="NAME=COLUMN",
                        help="put COLUMN into the click's custom dimensions as NAME "
                             "(a-z, 0-9, _; not a contract field); COLUMN alone names it "
                             "after the column; repeatable, at most 16")
    parser.add_argument("--refuse-owner-conflicts", action="store_true",
                        help="stop before publishing (exit 1) if any row contradicts its "
                             "ad's owner, instead of warning")
    parser.add_argument("--clicks-per-message", type=int, default=100,
                        help="clicks per published message (default 100)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--give-up-after", type=float, default=60.0, metavar="S",
                        help="fail if RabbitMQ stays unreachable for S seconds (default: 60); "
                             "what was confirmed before stays published, and a rerun is safe: "
                             "click ids deduplicate")


def run(args: argparse.Namespace, settings: Settings) -> int:
    options = ImportOptions(
        file=args.file, format=args.format, ad_column=args.ad_column,
        time_column=args.time_column, id_column=args.id_column, id_prefix=args.id_prefix,
        user_column=args.user_column, ip_column=args.ip_column,
        country_column=args.country_column, device_column=args.device_column,
        campaign_column=args.campaign_column, advertiser_column=args.advertiser_column,
        dimensions=tuple(args.dimension), refuse_owner_conflicts=args.refuse_owner_conflicts,
        clicks_per_message=args.clicks_per_message,
        progress=not args.no_progress, give_up_after=args.give_up_after)
    return import_clicks(options, settings)
