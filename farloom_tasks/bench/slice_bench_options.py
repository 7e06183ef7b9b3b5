"""``farloom bench slice-options``' options: what one run measures. No I/O library.

The flags (``farloom_tasks/cli/bench.py``) build these; the benchmark's modules read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from farloom_tasks.bench.report import DOCS_PATH
from farloom_tasks.core.dimensions import DEFAULT_DIMENSIONS


@dataclass(frozen=True)
class SliceBenchOptions:
    clicks: int = 1_000_000  # clicks in the minute
    ads: int = 100_000  # distinct ads in the minute
    zipf: float = 1.0  # exponent of the clicks beyond one per ad
    seed: int = 1
    dimensions: str = DEFAULT_DIMENSIONS  # FARLOOM_DIMENSIONS' syntax (core/dimensions.py)
    rounds: int = 3  # interleaved rounds; the median of each figure is reported
    read_minutes: int = 60  # minutes the top-100 reads sum over
    requests: int = 30  # timed requests per read per round
    ingest_messages: int = 1_000  # 100-click messages of the real ingest drain per round; 0: none
    write_docs: bool = False
    docs: Path = DOCS_PATH
    report: Path | None = None  # also write every round's figures as JSON here
    command_line: str = "bench slice-options"


QUICK = SliceBenchOptions(clicks=20_000, ads=2_000, rounds=1, read_minutes=5, requests=3,
                          ingest_messages=10)
