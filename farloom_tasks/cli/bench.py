"""``farloom bench``: throughput and latency benchmarks, one subcommand per part.

- ``ingest`` (bench_ingest): the ingest worker against two baseline consumers;
- ``aggregate`` (bench_aggregate): closing minutes with the top-k chord;
- ``api`` (bench_api): the query API.
Each lives in its own module, imported only when chosen, so a part that is not
in this tree yet gives a clear message instead of breaking the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from farloom_tasks.errors import FarloomError
from farloom_tasks.settings import Settings

# subcommand -> (module, one-line help)
PARTS: dict[str, tuple[str, str]] = {
    "ingest": ("farloom_tasks.bench.ingest",
               "ingest worker vs. a null and a naive consumer: clicks/s, RSS, latency"),
    "aggregate": ("farloom_tasks.bench.aggregate",
                  "closing minutes: per-shard top-k chord and merge"),
    "api": ("farloom_tasks.bench.api", "the query API: requests/s and latency"),
    "publish": ("farloom_tasks.bench.publish",
                "the log watcher's confirming publisher vs. synchronous confirms: messages/s"),
}


class PartUnavailable(FarloomError):
    """A benchmark whose module is not in this tree."""


def _load(part: str) -> ModuleType:
    module_name = PARTS[part][0]
    try:
        importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise  # the module exists but one of its imports is missing: a real bug
        raise PartUnavailable(f"`farloom bench {part}` is not available in this build "
                              f"({module_name} is missing)") from None
    module = sys.modules[module_name]
    if not (hasattr(module, "configure") and hasattr(module, "run")):
        raise PartUnavailable(f"`farloom bench {part}` is not available in this build "
                              f"({module_name} has no configure/run)")
    return module


def configure(parser: argparse.ArgumentParser, name: str) -> None:
    sub = parser.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    # Only the chosen benchmark's module is imported (the API one pulls in a web stack).
    chosen = next((arg for arg in sys.argv[1:] if arg in PARTS), None)
    for part, (_, help_text) in PARTS.items():
        part_parser = sub.add_parser(part, help=help_text, description=help_text)
        if chosen is not None and part != chosen:
            continue
        try:
            module = _load(part)
        except PartUnavailable as exc:
            part_parser.description = f"{help_text}. Not available: {exc}"
            part_parser.set_defaults(bench_unavailable=str(exc))
            continue
        module.configure(part_parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if getattr(args, "bench_unavailable", None):
        raise PartUnavailable(args.bench_unavailable)
    code: int = _load(args.bench).run(args, settings)
    return code
