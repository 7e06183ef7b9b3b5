"""The ``farloom`` command: one entry point, a subcommand per task.

Each subcommand lives in the module that owns its concept. The module exposes
``configure(parser, name)`` and ``run(args, settings) -> int``; it is imported only
when its subcommand runs, so ``farloom --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from farloom_tasks.cli.hints import HINTS
from farloom_tasks.errors import ConfigError, FarloomError
from farloom_tasks.settings import Settings

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "migrate": ("farloom_tasks.cli.admin", "create the database if missing and migrate it to head"),
    "config": ("farloom_tasks.cli.admin", "print every setting with its current value"),
    "generate": ("farloom_tasks.cli.generate", "publish synthetic click traffic"),
    "watch": ("farloom_tasks.cli.watch",
              "tail NDJSON click logs (follows rotation) and publish them"),
    "import": ("farloom_tasks.cli.import_file", "load a CSV or NDJSON click file once"),
    "ingest": ("farloom_tasks.cli.ingest", "consume clicks into raw and the Redis per-minute sets"),
    "write-aggregates": ("farloom_tasks.cli.write_aggregates", "consume minute results into agg.*"),
    "replay": ("farloom_tasks.cli.replay", "recompute minutes from Redis or raw"),
    "reconcile": ("farloom_tasks.cli.replay", "compare raw with agg and repair differences"),
    "bench": ("farloom_tasks.cli.bench", "measure throughput and latency against baselines"),
    "serve": ("farloom_tasks.cli.serve", "serve the query API and the dashboard (uvicorn)"),
    "status": ("farloom_tasks.cli.status", "pipeline health: queues, lag, late minutes, workers"),
    "archive": ("farloom_tasks.cli.archive",
                "list partitions retention dropped; restore an archived one"),
    "ads": ("farloom_tasks.cli.ads",
            "import an ads catalog CSV (ad_id,campaign_id,advertiser_id) into agg.ads"),
    "api-key": ("farloom_tasks.cli.api_key",
                "create, list or revoke keys of the query API (per advertiser, or admin)"),
}

def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="farloom",
        description="Farloom: exact per-minute ad-click counts and top ads.",
    )
    parser.add_argument("--log-level", default=None,
                        help="DEBUG, INFO, WARNING or ERROR (default: FARLOOM_LOG_LEVEL or INFO)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if only is None or only == name:
            importlib.import_module(module_name).configure(command, name)
    return parser


def _chosen_command(argv: Sequence[str]) -> str | None:
    for arg in argv:
        if arg in COMMANDS:
            return arg
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    chosen = _chosen_command(args_list)
    # Only the chosen subcommand's module is imported; `farloom --help` imports none.
    parser = build_parser(only=chosen or "")
    args = parser.parse_args(args_list)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"farloom: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=(args.log_level or settings.log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if logging.getLogger().level > logging.DEBUG:
        # pika narrates every channel open and close at INFO and logs each failed
        # connect at ERROR with a traceback; Farloom's own warnings already say
        # what failed and what happens next.
        logging.getLogger("pika").setLevel(logging.CRITICAL)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        code: int = module.run(args, settings)
        return code
    except KeyboardInterrupt:
        return 130
    except FarloomError as exc:
        print(f"farloom {args.command}: {exc}", file=sys.stderr)
        for kind, hint in HINTS.items():
            if isinstance(exc, kind):
                print(hint, file=sys.stderr)
        return 3

