"""Archive files of dropped partitions (adapter): a compressed COPY plus its manifest.

An archive of one partition is two files in the archive directory:

- ``<table>_<start>_<end>.copy.gz``: the partition's rows in PostgreSQL's COPY
  text format (exact for every column type, NULL as ``\\N``), gzip-compressed;
- ``<table>_<start>_<end>.manifest.json``: what the data file holds (table,
  range, columns, row count) and the sha256 of the data file as stored.

Both are written to a temporary name, fsynced and renamed into place, the
manifest last: a manifest that exists names a complete data file. Restoring
checks the checksum before reading a row, and the row count after.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from farloom_tasks.errors import FarloomError

log = logging.getLogger("farloom.archive")

FORMAT_VERSION = 1
DATA_SUFFIX = ".copy.gz"
MANIFEST_SUFFIX = ".manifest.json"
PROGRESS_BYTES = 64 << 20  # log progress every this many bytes written or read
READ_CHUNK = 1 << 20


class ArchiveError(FarloomError):
    """An archive file is missing, damaged, or does not match its manifest."""


@dataclass(frozen=True)
class Manifest:
    table: str  # the partitioned parent, e.g. raw.ad_clicks
    partition: str  # the partition's own name when it was archived
    range_start: int  # epoch seconds, inclusive
    range_end: int  # epoch seconds, exclusive
    columns: tuple[str, ...]
    rows: int
    sha256: str  # of the data file, as stored (compressed)
    data_file: str  # the data file's name, in the manifest's directory
    written_at: float
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict[str, Any]:
        return {"format_version": self.format_version, "table": self.table,
                "partition": self.partition, "range_start": _utc(self.range_start),
                "range_end": _utc(self.range_end), "range_start_epoch": self.range_start,
                "range_end_epoch": self.range_end, "columns": list(self.columns),
                "rows": self.rows, "sha256": self.sha256, "data_file": self.data_file,
                "format": "postgresql-copy-text+gzip", "written_at": _utc(self.written_at)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Manifest:
        version = doc.get("format_version")
        if version != FORMAT_VERSION:
            raise ArchiveError(f"archive format version {version!r} is not supported "
                               f"(this Farloom reads version {FORMAT_VERSION})")
        try:
            return cls(table=str(doc["table"]), partition=str(doc["partition"]),
                       range_start=int(doc["range_start_epoch"]),
                       range_end=int(doc["range_end_epoch"]),
                       columns=tuple(str(c) for c in doc["columns"]), rows=int(doc["rows"]),
                       sha256=str(doc["sha256"]), data_file=str(doc["data_file"]),
                       written_at=datetime.fromisoformat(
                           str(doc["written_at"]).replace("Z", "+00:00")).timestamp())
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchiveError(f"the manifest lacks or garbles {exc}") from None


def _utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def base_name(table: str, range_start: int, range_end: int) -> str:
    """``raw.ad_clicks_20261202T1300Z_20261202T1400Z``: the table and the range."""
    def stamp(seconds: int) -> str:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y%m%dT%H%MZ")

    return f"{table}_{stamp(range_start)}_{stamp(range_end)}"


class _HashingWriter:
    """The file object COPY writes into: gzip over a file, hashing what reaches the disk."""

    def __init__(self, path: Path, label: str) -> None:
        self._file = open(path, "wb")  # noqa: SIM115 (closed in finish)
        self._sha = hashlib.sha256()
        self._gzip = gzip.GzipFile(fileobj=self, mode="wb", compresslevel=6, mtime=0)
        self.lines = 0
        self.raw_bytes = 0
        self._label = label
        self._next_report = PROGRESS_BYTES
        self._started = time.monotonic()

    # gzip calls this with compressed bytes.
    def write(self, data: bytes) -> int:
        self._sha.update(data)
        return self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    def copy_sink(self, data: str | bytes) -> int:
        chunk = data.encode("utf-8") if isinstance(data, str) else data
        self.lines += chunk.count(b"\n")
        self.raw_bytes += len(chunk)
        if self.raw_bytes >= self._next_report:
            log.info("archiving %s: %d rows, %d MB so far (%.0f s)", self._label, self.lines,
                     self.raw_bytes >> 20, time.monotonic() - self._started)
            self._next_report += PROGRESS_BYTES
        self._gzip.write(chunk)
        return len(chunk)

    def finish(self) -> str:
        self._gzip.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self._sha.hexdigest()

    def abandon(self) -> None:
        try:
            self._gzip.close()
        finally:
            self._file.close()


class _CopySink:
    """What psycopg2's copy_expert writes to: only ``write`` is used."""

    def __init__(self, writer: _HashingWriter) -> None:
        self.write: Callable[[str | bytes], int] = writer.copy_sink


def write_archive(cursor: Any, *, table: str, partition: str, range_start: int,
                  range_end: int, columns: list[str], archive_dir: Path) -> Manifest:
    """COPY ``partition`` (a table nothing writes to any more) into an archive.

    Returns the manifest, written and durable. Raises ArchiveError if the rows
    COPY wrote differ from the table's count (read in the same transaction).
    """
    archive_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = manifest_path_for(archive_dir, table, range_start, range_end)
    data_path = archive_dir / (base_name(table, range_start, range_end) + DATA_SUFFIX)
    temporary = data_path.with_name(data_path.name + ".tmp")
    column_list = ", ".join(_quoted(c) for c in columns)
    writer = _HashingWriter(temporary, partition)
    try:
        cursor.copy_expert(f"COPY {_qualified(partition)} ({column_list}) TO STDOUT",
                           _CopySink(writer))
        copied = cursor.rowcount
        digest = writer.finish()
    except BaseException:
        writer.abandon()
        temporary.unlink(missing_ok=True)
        raise
    cursor.execute(f"SELECT count(*) FROM {_qualified(partition)}")
    counted = int(cursor.fetchone()[0])
    if not copied == writer.lines == counted:
        temporary.unlink(missing_ok=True)
        raise ArchiveError(f"archiving {partition}: COPY reported {copied} rows and wrote "
                           f"{writer.lines} lines, but the table holds {counted}")
    os.replace(temporary, data_path)
    manifest = Manifest(table=table, partition=partition, range_start=range_start,
                        range_end=range_end, columns=tuple(columns), rows=counted,
                        sha256=digest, data_file=data_path.name, written_at=time.time())
    _write_durably(manifest_path, json.dumps(manifest.to_json(), indent=2).encode() + b"\n")
    _fsync_directory(archive_dir)
    log.info("archived %s: %d rows into %s (%d MB before compression)", partition, counted,
             data_path, writer.raw_bytes >> 20)
    return manifest


def manifest_path_for(archive_dir: Path, table: str, range_start: int, range_end: int) -> Path:
    """Where the manifest of ``table``'s partition [range_start, range_end) is written."""
    return archive_dir / (base_name(table, range_start, range_end) + MANIFEST_SUFFIX)


def manifest_path_of(path: Path) -> Path:
    """The manifest of an archive, given its manifest or its data file."""
    name = path.name
    if name.endswith(DATA_SUFFIX):
        return path.with_name(name[: -len(DATA_SUFFIX)] + MANIFEST_SUFFIX)
    return path


def read_manifest(path: Path) -> tuple[Manifest, Path]:
    """The manifest of the archive at ``path`` and its data file's path (both must exist)."""
    manifest_path = manifest_path_of(path)
    if not manifest_path.is_file():
        raise ArchiveError(f"no archive manifest at {manifest_path}"
                           + ("" if manifest_path == path else f" (for {path})"))
    try:
        doc = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ArchiveError(f"cannot read the manifest {manifest_path}: {exc}") from None
    if not isinstance(doc, dict):
        raise ArchiveError(f"{manifest_path} is not an archive manifest")
    manifest = Manifest.from_json(doc)
    data_path = manifest_path.with_name(manifest.data_file)
    if not data_path.is_file():
        raise ArchiveError(f"the data file {data_path} named by {manifest_path} is missing")
    return manifest, data_path


def verify_checksum(manifest: Manifest, data_path: Path) -> None:
    """Raise ArchiveError unless the data file's sha256 is the manifest's."""
    sha = hashlib.sha256()
    with open(data_path, "rb") as handle:
        while chunk := handle.read(READ_CHUNK):
            sha.update(chunk)
    if sha.hexdigest() != manifest.sha256:
        raise ArchiveError(f"checksum mismatch: {data_path} has sha256 {sha.hexdigest()}, "
                           f"its manifest says {manifest.sha256}; the file is damaged or "
                           "is not the one archived")


def load_archive(cursor: Any, manifest: Manifest, data_path: Path, target: str) -> int:
    """COPY the archived rows into ``target`` (in the caller's transaction); rows loaded."""
    column_list = ", ".join(_quoted(c) for c in manifest.columns)
    with gzip.open(data_path, "rb") as rows:
        cursor.copy_expert(f"COPY {_qualified(target)} ({column_list}) FROM STDIN", rows,
                           size=READ_CHUNK)
    return int(cursor.rowcount)


def _write_durably(path: Path, content: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _qualified(name: str) -> str:
    """``schema.table`` quoted part by part (names come from the ledger, never from input)."""
    return ".".join(_quoted(part) for part in name.split(".", 1))
