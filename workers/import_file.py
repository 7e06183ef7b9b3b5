"""Loading a CSV or NDJSON click file once into ``farloom.clicks`` (``farloom import``).

Columns are mapped to the click contract (``--ad-column``, ``--time-column``,
optional id/user/ip/country/device/campaign/advertiser columns), and any column
to a custom dimension (``--dimension NAME=COLUMN``, core/import_mapping.py),
which the click carries in its ``dimensions`` object. Without ``--id-column`` the click id is
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

When a campaign or advertiser column is mapped, the file is read once before
publishing (core/import_owners.py): every row's owner claim is judged in file
order against the ads catalog, the rows that will be dead-lettered as
``ad_owner_mismatch`` are counted and quoted in a warning (or, with
``--refuse-owner-conflicts``, the import stops there), and the owners found
are written into the catalog, so that the rows dead-lettered are exactly
those, whatever order ingest reads the messages in.
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
from farloom_tasks.core.ad_owners import Claim, Owner
from farloom_tasks.core.clicks import Click, parse_rfc3339, validate_click
from farloom_tasks.core.custom_dimensions import FIELD as DIMENSIONS_FIELD
from farloom_tasks.core.import_mapping import BadMapping, parse_dimension_flags
from farloom_tasks.core.import_owners import OwnerPrescan
from farloom_tasks.core.partitions import HOUR, acceptance_floor
from farloom_tasks.pipeline import import_owners
from farloom_tasks.settings import Settings
from farloom_tasks.stores import db
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
    dimensions: dict[str, str] = field(default_factory=dict)  # custom dimension -> column

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
        if self.dimensions:
            # An empty cell names no value; ingest judges the others (invalid_dimensions).
            named = {name: row.get(column) for name, column in self.dimensions.items()}
            values = {name: value if isinstance(value, str) else str(value)
                      for name, value in named.items() if value not in (None, "")}
            if values:
                click[DIMENSIONS_FIELD] = values
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
    device_column: str | None = None  # the contract's device class (desktop, mobile, ...)
    campaign_column: str | None = None
    advertiser_column: str | None = None
    # ``--dimension`` flags: NAME=COLUMN, or COLUMN (named after it); core/import_mapping.py
    dimensions: tuple[str, ...] = ()
    refuse_owner_conflicts: bool = False  # stop before publishing if any row conflicts
    clicks_per_message: int = 100
    progress: bool = True  # show a progress bar on stderr
    give_up_after: float = 60.0  # s RabbitMQ may stay unreachable before the import fails


def owner_claims(rows: Iterator[Row], settings: Settings, now: float) -> Iterator[Claim]:
    """The owner each row that ingest would accept claims for its ad, in file order.

    A row is validated as ingest will validate it (at ``now``), so a row ingest
    dead-letters for another reason claims nothing, as it fills nothing there.
    """
    earliest = acceptance_floor(now, settings.raw_retention_days,
                                settings.raw_partition_hours * HOUR)
    for row in rows:
        if row.click is None:
            continue
        click = validate_click(row.click, now, settings.max_clock_skew_seconds, earliest)
        if isinstance(click, Click) and (click.campaign_id is not None
                                         or click.advertiser_id is not None):
            yield Claim(row.line, click.ad_id, Owner(click.campaign_id, click.advertiser_id))


def _settle_owners(rows: Iterator[Row], settings: Settings, options: ImportOptions,
                   total: int) -> OwnerPrescan | None:
    """Judge the file's owner claims, warn about conflicts and write the owners into the
    catalog; None if the import must stop (``--refuse-owner-conflicts``)."""
    engine = db.make_engine(settings.database_url, pool_size=1)
    try:
        bar = tqdm(total=max(total, 0), unit="row", file=sys.stderr,
                   disable=not options.progress, dynamic_ncols=True,
                   desc=f"{options.file.name}: ad owners")
        try:
            found = import_owners.prescan(engine, owner_claims(rows, settings, time.time()),
                                          bar.update)
        finally:
            bar.close()
        if found.conflicts:
            print(f"farloom import: warning: {found.conflicts:,} of the {found.claims:,} rows "
                  f"naming an owner contradict the owner an earlier row (or the ads catalog) "
                  f"gave their ad, for {len(found.conflicting_ads):,} of "
                  f"{len(found.owners):,} ads: an ad belongs to one campaign and one "
                  "advertiser, the first row naming one wins, and ingest dead-letters the "
                  "others as ad_owner_mismatch (docs/design.md, \"The ads catalog\"). "
                  "For example:", file=sys.stderr)
            for example in found.examples:
                print(f"  {example}", file=sys.stderr)
            if options.refuse_owner_conflicts:
                print("farloom import: stopped before publishing anything "
                      "(--refuse-owner-conflicts); the catalog is unchanged", file=sys.stderr)
                return None
            print("  (--refuse-owner-conflicts stops an import with conflicts instead)",
                  file=sys.stderr)
        # Written before publishing: every click is then judged against a committed
        # owner, so the rows dead-lettered are the conflicts above whatever order
        # ingest reads the messages in (core/import_owners.py).
        settled = import_owners.settle(engine, found)
        print(f"farloom import: the ads catalog holds the owners of the file's "
              f"{len(found.owners):,} ads ({settled:,} rows made or filled)", file=sys.stderr)
        return found
    finally:
        engine.dispose()


def import_clicks(options: ImportOptions, settings: Settings) -> int:
    """Publish every row of the file, all confirmed; return the exit code.

    An unreadable file, a missing column or a bad option prints why and returns
    2; owner conflicts under ``refuse_owner_conflicts`` print them and return 1,
    before anything is published; SIGINT/SIGTERM stops reading and waits for the
    outstanding confirms.
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
    try:
        dimensions = parse_dimension_flags(list(options.dimensions))
    except BadMapping as bad:
        print(f"farloom import: {bad}", file=sys.stderr)
        return 2
    # NDJSON in the click contract's own shape keeps its optional fields by default.
    same_name = fmt == "ndjson"
    chosen: dict[str, str | None] = {
        "user_id": options.user_column, "ip": options.ip_column,
        "country": options.country_column, "device": options.device_column,
        "campaign_id": options.campaign_column, "advertiser_id": options.advertiser_column}
    optional = {name: column or name for name, column in chosen.items()
                if column or same_name}
    if same_name and not dimensions:
        optional[DIMENSIONS_FIELD] = DIMENSIONS_FIELD  # the element's own object, as it is
    columns = ColumnMap(options.ad_column, options.time_column, options.id_column,
                        options.id_prefix, optional, dimensions)
    if fmt == "csv":
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            header = next(csv.reader(handle), [])
        wanted = {options.ad_column, options.time_column, options.id_column, *optional.values(),
                  *dimensions.values()}
        missing = sorted(column for column in wanted - set(header) if column is not None)
        if missing:
            print(f"farloom import: {path} has no column {', '.join(map(str, missing))} "
                  f"(its columns: {', '.join(header)})", file=sys.stderr)
            return 2
    def read_rows() -> Iterator[Row]:
        return csv_rows(path, columns) if fmt == "csv" else ndjson_rows(path, columns)

    total = _count_lines(path) - (1 if fmt == "csv" else 0)
    owners: OwnerPrescan | None = None
    if "campaign_id" in optional or "advertiser_id" in optional:
        owners = _settle_owners(read_rows(), settings, options, total)
        if owners is None:
            return 1
    rows = read_rows()
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
             f"ingest to dead-letter" if source.problem_count else "")
          + (f"; {owners.conflicts:,} contradict their ad's owner and will be dead-lettered "
             f"as ad_owner_mismatch" if owners is not None and owners.conflicts else ""))
    if source.problem_count > len(source.problems):
        print(f"(only the first {len(source.problems)} unmappable lines were listed)",
              file=sys.stderr)
    return 0
