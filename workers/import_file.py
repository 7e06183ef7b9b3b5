"""Loading a CSV or NDJSON click file once into ``farloom.clicks`` (``farloom import``).

Columns are mapped to the click contract (``--ad-column``, ``--time-column``,
optional id/user/ip/country columns). Without ``--id-column`` the click id is
``--id-prefix`` plus the 1-based row number (the header excluded; for NDJSON,
the line number), so re-importing the same file is deduplicated by ingest.

Naive timestamps (``2017-11-07 9:30``, single-digit hours included) are read as
UTC and sent as RFC 3339; timestamps with an offset and epoch numbers pass
through unchanged.

A row that cannot be mapped (a missing ad or time, a time that is no
timestamp, an NDJSON line that is not JSON) is still published as well as it
can be, so the ingest worker dead-letters it with its reason and nothing
disappears silently; its line number is listed on stderr and counted in the
summary.
"""

from __future__ import annotations

import csv
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from farloom_tasks import processes
from farloom_tasks.core.clicks import parse_rfc3339
from farloom_tasks.settings import Settings
from farloom_tasks.stores.click_publisher import ConfirmingPublisher
from farloom_tasks.stores.click_source import Outgoing
from farloom_tasks.stores.queue_types import QueueType

_NAIVE = re.compile(
    r"\s*(\d{4})-(\d{1,2})-(\d{1,2})[T ](\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?\s*\Z")
_NUMBER = re.compile(r"\s*-?\d+(\.\d+)?\s*\Z")
SHOWN_PROBLEMS = 20  # unmappable rows listed one by one before only counting them


def timestamp_for_contract(text: str) -> str | float | None:
    """A CSV/NDJSON time value as the contract wants it, or None if it is no timestamp."""
    try:
        parse_rfc3339(text)
        return text
    except ValueError:
        pass
    if _NUMBER.match(text):
        return float(text)
    match = _NAIVE.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction = match.groups()
    if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31 and int(hour) < 24
            and int(minute) < 60 and int(second or 0) < 61):
        return None
    return (f"{year}-{int(month):02d}-{int(day):02d}T{int(hour):02d}:{minute}:"
            f"{int(second or 0):02d}{fraction or ''}Z")


@dataclass
class ColumnMap:
    ad: str
    time: str
    id_column: str | None = None
    id_prefix: str = ""
    optional: dict[str, str] = field(default_factory=dict)  # contract field -> column

    def click(self, row: dict[str, Any], row_number: int) -> tuple[dict[str, Any], str | None]:
        """The click for one row, and what is wrong with it (None if nothing is)."""
        problems = []
        click: dict[str, Any] = {}
        raw_id = row.get(self.id_column) if self.id_column else None
        click["click_id"] = (str(raw_id) if raw_id not in (None, "")
                             else f"{self.id_prefix}{row_number}")
        if self.id_column and raw_id in (None, ""):
            problems.append(f"no {self.id_column}; used the row number")
        ad = row.get(self.ad)
        if ad in (None, ""):
            problems.append(f"no {self.ad}")
        else:
            click["ad_id"] = ad if isinstance(ad, int) and not isinstance(ad, bool) else str(ad)
        raw_time = row.get(self.time)
        stamp = None if raw_time in (None, "") else (
            raw_time if isinstance(raw_time, int | float) and not isinstance(raw_time, bool)
            else timestamp_for_contract(str(raw_time)))
        if stamp is None:
            problems.append(f"{self.time} {raw_time!r} is not a timestamp")
            if raw_time not in (None, ""):
                click["clicked_at"] = raw_time  # ingest dead-letters it as bad_timestamp
        else:
            click["clicked_at"] = stamp
        for name, column in self.optional.items():
            value = row.get(column)
            if value not in (None, ""):
                click[name] = value
        return click, "; ".join(problems) or None


@dataclass
class Row:
    line: int  # physical line number in the file, for people
    click: dict[str, Any] | None  # None: the line is published raw (not JSON)
    raw: bytes = b""
    problem: str | None = None


def csv_rows(path: Path, columns: ColumnMap) -> Iterator[Row]:
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.DictReader(handle)
        for row_number, row in enumerate(reader, start=1):
            click, problem = columns.click(row, row_number)
            yield Row(reader.line_num, click, problem=problem)


def ndjson_rows(path: Path, columns: ColumnMap) -> Iterator[Row]:
    with path.open("rb") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                element = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield Row(line_number, None, line.strip(), "not JSON")
                continue
            if not isinstance(element, dict):
                yield Row(line_number, None, line.strip(), "not a JSON object")
                continue
            click, problem = columns.click(element, line_number)
            yield Row(line_number, click, problem=problem)


class FileSource:
    """A publisher Source over the rows of one file, ``per_message`` clicks a message."""

    def __init__(self, rows: Iterator[Row], per_message: int, bar: tqdm[Any]) -> None:
        self.rows = rows
        self.per_message = per_message
        self.bar = bar
        self.problems: list[tuple[int, str]] = []
        self.problem_count = 0
        self.rows_read = 0

    def take(self, limit: int, now: float) -> list[Outgoing] | float | None:
        messages: list[Outgoing] = []
        batch: list[dict[str, Any]] = []
        for row in self.rows:
            self.rows_read += 1
            if row.problem is not None:
                self._report(row)
            if row.click is None:
                messages.append(Outgoing(row.raw, 1))
            else:
                batch.append(row.click)
                if len(batch) == self.per_message:
                    messages.append(_message(batch))
                    batch = []
            if len(messages) >= limit:
                break
        if batch:
            messages.append(_message(batch))
        return messages or None

    def confirmed(self, messages: list[Outgoing]) -> None:
        self.bar.update(sum(message.clicks for message in messages))

    def _report(self, row: Row) -> None:
        self.problem_count += 1
        if len(self.problems) < SHOWN_PROBLEMS:
            self.problems.append((row.line, row.problem or ""))
            self.bar.write(f"line {row.line}: {row.problem} (published for ingest to "
                           f"dead-letter)", file=sys.stderr)


def _message(batch: list[dict[str, Any]]) -> Outgoing:
    # Always an array, also for one click: the mapping never produces a bare scalar.
    return Outgoing(orjson.dumps(batch), len(batch))


def _count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines


@dataclass(frozen=True)
class ImportOptions:
    """What to load and how; every field is the ``farloom import`` flag of the same name."""

    file: Path  # a .csv or .ndjson/.jsonl file
    format: str = "auto"  # "auto" (from the extension), "csv" or "ndjson"
    ad_column: str = "ad_id"
    time_column: str = "clicked_at"  # naive times are UTC
    id_column: str | None = None  # None: ``id_prefix`` plus the 1-based row number
    id_prefix: str = ""
    user_column: str | None = None
    ip_column: str | None = None
    country_column: str | None = None
    clicks_per_message: int = 100
    progress: bool = True  # show a progress bar on stderr
    give_up_after: float = 60.0  # s RabbitMQ may stay unreachable before the import fails


def import_clicks(options: ImportOptions, settings: Settings) -> int:
    """Publish every row of the file, all confirmed; return the exit code.

    An unreadable file, a missing column or a bad option prints why and returns
    2; SIGINT/SIGTERM stops reading and waits for the outstanding confirms.
    """
    path: Path = options.file
    if not path.is_file():
        print(f"farloom import: {path} is not a readable file", file=sys.stderr)
        return 2
    if options.clicks_per_message < 1:
        print("farloom import: --clicks-per-message must be >= 1", file=sys.stderr)
        return 2
    fmt = options.format
    if fmt == "auto":
        fmt = "csv" if path.suffix.lower() in (".csv", ".tsv") else "ndjson"
    # NDJSON in the click contract's own shape keeps its optional fields by default.
    same_name = fmt == "ndjson"
    chosen: dict[str, str | None] = {"user_id": options.user_column, "ip": options.ip_column,
                                     "country": options.country_column}
    optional = {name: column or name for name, column in chosen.items()
                if column or same_name}
    columns = ColumnMap(options.ad_column, options.time_column, options.id_column,
                        options.id_prefix, optional)
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            header = next(csv.reader(handle), [])
        wanted = {options.ad_column, options.time_column, options.id_column, *optional.values()}
        missing = sorted(column for column in wanted - set(header) if column is not None)
        if missing:
            print(f"farloom import: {path} has no column {', '.join(map(str, missing))} "
                  f"(its columns: {', '.join(header)})", file=sys.stderr)
            return 2
    rows = csv_rows(path, columns) if fmt == "csv" else ndjson_rows(path, columns)
    total = _count_lines(path) - (1 if fmt == "csv" else 0)
    bar = tqdm(total=max(total, 0), unit="click", file=sys.stderr, disable=not options.progress,
               dynamic_ncols=True, desc=path.name)
    source = FileSource(rows, options.clicks_per_message, bar)
    publisher = ConfirmingPublisher(settings.amqp_url, source,
                                    queue_type=QueueType.of(settings),
                                    window=settings.publish_window_messages,
                                    channels=settings.publish_channels,
                                    max_backoff=settings.reconnect_max_backoff_seconds,
                                    give_up_after=options.give_up_after)
    processes.on_stop_signals(lambda _signum: publisher.stop())
    started = time.monotonic()
    try:
        stats = publisher.run()
    finally:
        bar.close()
    print(stats.summary())
    print(f"imported {source.rows_read:,} rows of {path} in {time.monotonic() - started:.1f} s"
          + (f"; {source.problem_count:,} could not be mapped and were published for "
             f"ingest to dead-letter" if source.problem_count else ""))
    if source.problem_count > len(source.problems):
        print(f"(only the first {len(source.problems)} unmappable lines were listed)",
              file=sys.stderr)
    return 0
