"""The options of ``farloom bench api --slices`` (bench/api_slices.py), light to import:
the CLI reads their defaults before any benchmark module is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from farloom_tasks.bench.report import DOCS_PATH


@dataclass(frozen=True)
class SliceApiOptions:
    minutes: int = 90  # filled minutes: an aligned hour, then 30 minutes of the next
    clicks: int = 1_000_000  # per minute
    ads: int = 100_000  # per minute, each clicked at least once
    templates: int = 6  # distinct minutes cycled over the filled ones
    requests: int = 100  # timed requests per scenario
    seed: int = 7
    write_docs: bool = False
    docs: Path = DOCS_PATH
