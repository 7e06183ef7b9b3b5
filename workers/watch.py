"""Tailing NDJSON click logs like ``tail -F`` and publishing each line (``farloom watch``).

- Rename rotation: when a new inode appears at a path, the old file is read
  to its end (and kept open for ``--rotate-linger`` seconds, for writers that
  reopen late), then the new file is read from its start.
- copytruncate: a file that shrinks below what was read is read again from 0.
  (Lines appended between the last poll and the truncation exist only in the
  copy: copytruncate itself is lossy for any tailer; prefer rename rotation.)
- Paths that do not exist yet are picked up when they appear.
- A final line without a newline is held back until it is completed, or
  published as it is once its file was rotated away and stayed idle.

Positions are kept per (device, inode) in a JSON state file, written
atomically (temporary file, fsync, rename, fsync of the directory) and only
ever to offsets the broker has confirmed, so a restart neither skips nor
re-sends a confirmed line (a SIGKILL can re-send the lines confirmed in the
last ``--state-interval`` seconds; click_id deduplicates them).

The watcher is a transport, not a validator: lines that are JSON objects are
batched into arrays, and any other line is published on its own, unchanged,
so the ingest worker dead-letters it with its reason.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from farloom_tasks import processes
from farloom_tasks.core.tail_position import (
    FileId,
    Positions,
    Token,
    is_truncated,
    resume_offset,
    split_lines,
)
from farloom_tasks.settings import Settings
from farloom_tasks.stores.click_publisher import ConfirmingPublisher
from farloom_tasks.stores.click_source import Outgoing, PublishStats
from farloom_tasks.stores.queue_types import QueueType
from farloom_tasks.stores.watch_state import StateFile, default_state_file

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 20  # bytes read from one file per poll, so one busy file cannot starve others


@dataclass
class _Open:
    path: str
    handle: IO[bytes]
    file: FileId
    read_offset: int  # bytes read so far, including the held-back fragment
    fragment: bytes = b""
    generation: int = 0
    idle_since: float | None = None  # monotonic; set on a read that found nothing


class LogTail:
    """A publisher Source over the lines appended to ``paths``."""

    def __init__(self, paths: list[str], positions: Positions, *, clicks_per_message: int,
                 poll_interval: float, rotate_linger: float) -> None:
        self.paths = paths
        self.positions = positions
        self.clicks_per_message = clicks_per_message
        self.poll_interval = poll_interval
        self.rotate_linger = rotate_linger
        self.current: dict[str, _Open] = {}
        self.draining: list[_Open] = []
        self.backlog: deque[Outgoing] = deque()
        self.lines_read = 0
        self._recover_rotated()

    # -- Source --------------------------------------------------------------
    def take(self, limit: int, now: float) -> list[Outgoing] | float | None:
        if not self.backlog:
            self._poll(now)
        taken = [self.backlog.popleft() for _ in range(min(limit, len(self.backlog)))]
        return taken or self.poll_interval

    def confirmed(self, messages: list[Outgoing]) -> None:
        for message in messages:
            self.positions.confirm(message.token)

    def close(self) -> None:
        for tail in [*self.current.values(), *self.draining]:
            tail.handle.close()

    # -- files ---------------------------------------------------------------
    def _recover_rotated(self) -> None:
        """Finish files rotated away while the watcher was down (found by inode nearby)."""
        at_paths = {self._stat_id(path) for path in self.paths}
        for file, saved in list(self.positions.files.items()):
            if file in at_paths:
                continue
            found = self._find_inode(Path(saved.path).parent, file)
            if found is None:
                log.warning("%s (inode %d) is gone; its position is dropped", saved.path, file.ino)
                self.positions.files.pop(file)
                self.positions.dirty = True
                continue
            tail = self._open(found, file, saved.offset)
            if tail is not None:
                log.info("finishing %s, rotated from %s while stopped", found, saved.path)
                self.draining.append(tail)

    def _poll(self, now: float) -> None:
        for path in self.paths:
            file = self._stat_id(path)
            tail = self.current.get(path)
            if tail is not None and file != tail.file:
                # Renamed away (or deleted): finish the old inode, then start the new one.
                self.draining.append(tail)
                del self.current[path]
                tail = None
            if tail is None and file is not None:
                saved = self.positions.files.get(file)
                tail = self._open(path, file, None if saved is None else saved.offset)
                if tail is not None:
                    self.current[path] = tail
            if tail is not None:
                self._read(tail, now, final=False)
        for tail in list(self.draining):
            self._read(tail, now, final=False)
            if tail.idle_since is not None and now - tail.idle_since >= self.rotate_linger:
                self._read(tail, now, final=True)
                tail.handle.close()
                self.draining.remove(tail)
                self.positions.finish(tail.file, tail.read_offset)

    def _open(self, path: str, file: FileId, saved_offset: int | None) -> _Open | None:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - kept open across polls
        except OSError as exc:
            log.warning("cannot open %s: %s", path, exc)
            return None
        stat = os.fstat(handle.fileno())
        if FileId(stat.st_dev, stat.st_ino) != file:
            handle.close()  # replaced between stat and open; the next poll sees the new one
            return None
        offset = resume_offset(saved_offset, stat.st_size)
        handle.seek(offset)
        self.positions.start(file, path, offset)
        return _Open(path, handle, file, offset,
                     generation=self.positions.generations.get(file, 0))

    def _read(self, tail: _Open, now: float, *, final: bool) -> None:
        size = os.fstat(tail.handle.fileno()).st_size
        if is_truncated(tail.read_offset, size):
            log.warning("%s was truncated (copytruncate?); reading it again from the start",
                        tail.path)
            self.positions.truncated(tail.file, tail.path)
            tail.generation = self.positions.generations[tail.file]
            tail.handle.seek(0)
            tail.read_offset, tail.fragment = 0, b""
        data = tail.handle.read(READ_CHUNK)
        if not data and not (final and tail.fragment):
            tail.idle_since = tail.idle_since or now
            return
        tail.idle_since = None
        base = tail.read_offset - len(tail.fragment)
        buffer = tail.fragment + data
        tail.read_offset += len(data)
        lines, used = split_lines(buffer, base)
        tail.fragment = buffer[used:]
        if final and tail.fragment:
            # Rotated away and idle: no writer will finish this line.
            lines.append((tail.fragment, tail.read_offset))
            tail.fragment = b""
        self.lines_read += len(lines)
        self._to_messages(tail, lines)

    def _to_messages(self, tail: _Open, lines: list[tuple[bytes, int]]) -> None:
        batch: list[bytes] = []
        batch_end = 0

        def flush() -> None:
            if batch:
                self.backlog.append(Outgoing(b"[" + b",".join(batch) + b"]", len(batch),
                                             Token(tail.file, tail.generation, batch_end)))
                batch.clear()

        for line, end in lines:
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith(b"{") and _is_json(stripped):
                batch.append(stripped)
                batch_end = end
                if len(batch) >= self.clicks_per_message:
                    flush()
            else:
                flush()
                # Published unchanged: ingest dead-letters it with its reason.
                self.backlog.append(Outgoing(line, 1, Token(tail.file, tail.generation, end)))
        flush()

    @staticmethod
    def _stat_id(path: str) -> FileId | None:
        try:
            stat = os.stat(path)
        except OSError:
            return None
        return FileId(stat.st_dev, stat.st_ino)

    @staticmethod
    def _find_inode(directory: Path, file: FileId) -> str | None:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return None
        for entry in entries:
            try:
                stat = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if FileId(stat.st_dev, stat.st_ino) == file and entry.is_file():
                return entry.path
        return None


def _is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


@dataclass(frozen=True)
class WatchOptions:
    """What to follow and how; every field is the ``farloom watch`` flag of the same name."""

    paths: tuple[str, ...]  # NDJSON log files (they may not exist yet)
    state_file: Path | None = None  # None = default_state_file(settings, paths)
    clicks_per_message: int = 100  # JSON-object lines batched into one message
    poll_interval: float = 0.2  # s between checks of idle files
    rotate_linger: float = 2.0  # s a rotated file is still read after it went idle
    state_interval: float = 0.5  # s at most between state-file writes


def watch_logs(options: WatchOptions, settings: Settings) -> int:
    """Follow the files until SIGINT/SIGTERM, then wait for the confirms; return 0.

    Confirmed positions are saved on the way out, whatever stopped the run.
    """
    paths = [os.path.abspath(path) for path in options.paths]
    state = StateFile(options.state_file or default_state_file(settings, paths))
    positions = state.load()
    tail = LogTail(paths, positions, clicks_per_message=max(1, options.clicks_per_message),
                   poll_interval=options.poll_interval, rotate_linger=options.rotate_linger)
    last_save = [0.0]
    last_report = [time.monotonic()]

    def progress(stats: PublishStats) -> None:
        now = time.monotonic()
        if positions.dirty and now - last_save[0] >= options.state_interval:
            state.save(positions)
            last_save[0] = now
        if now - last_report[0] >= 10:
            last_report[0] = now
            log.info("watch: %s lines read, %s clicks confirmed", f"{tail.lines_read:,}",
                     f"{stats.clicks:,}")

    class SavingTail:
        """Saves confirmed positions also when no confirms arrive (a quiet log)."""

        def take(self, limit: int, now: float) -> list[Outgoing] | float | None:
            if positions.dirty and time.monotonic() - last_save[0] >= options.state_interval:
                state.save(positions)
                last_save[0] = time.monotonic()
            return tail.take(limit, now)

        def confirmed(self, messages: list[Outgoing]) -> None:
            tail.confirmed(messages)

    publisher = ConfirmingPublisher(settings.amqp_url, SavingTail(),
                                    queue_type=QueueType.of(settings),
                                    window=settings.publish_window_messages,
                                    channels=settings.publish_channels,
                                    max_backoff=settings.reconnect_max_backoff_seconds,
                                    on_progress=progress)

    processes.on_stop_signals(lambda _signum: publisher.stop())
    print(f"watching {', '.join(paths)}; state in {state.path}", file=sys.stderr, flush=True)
    try:
        stats = publisher.run()
    finally:
        state.save(positions)
        tail.close()
    print(stats.summary())
    return 0
