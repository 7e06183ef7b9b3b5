"""Where ``farloom watch`` stands in each log file. Pure: no file or clock access.

A file is identified by (device, inode), not by its path: after a rename
rotation the old inode lives on under another name while a new one takes the
path. A position is the byte offset just past the last line the broker has
confirmed; it only ever moves to a confirmed offset, so a restart resumes
exactly after the last confirmed line. A copytruncate starts a new
*generation* of the same inode at offset 0; confirms from an older generation
no longer move the position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class FileId(NamedTuple):
    dev: int
    ino: int


class Token(NamedTuple):
    """Carried by each published message: the line end it confirms."""

    file: FileId
    generation: int
    offset: int  # byte offset just past the message's last line


def split_lines(data: bytes, base_offset: int) -> tuple[list[tuple[bytes, int]], int]:
    """Complete lines of ``data`` (read at ``base_offset``) with the offset past each.

    Returns the lines without their line ending and the number of bytes they
    use; an unterminated tail is left for the next read, since the writer may
    be in the middle of it.
    """
    lines: list[tuple[bytes, int]] = []
    start = 0
    while True:
        end = data.find(b"\n", start)
        if end < 0:
            break
        line = data[start:end]
        if line.endswith(b"\r"):
            line = line[:-1]
        lines.append((line, base_offset + end + 1))
        start = end + 1
    return lines, start


def resume_offset(saved_offset: int | None, size: int) -> int:
    """Where to start reading a file found at start-up, given its saved position.

    A saved offset beyond the file's size means the file was truncated while
    the watcher was down: its content is new, so start from the beginning.
    """
    if saved_offset is None or saved_offset > size:
        return 0
    return saved_offset


def is_truncated(read_offset: int, size: int) -> bool:
    """copytruncate: the file at the same inode is now shorter than what was read."""
    return size < read_offset


@dataclass
class SavedPosition:
    path: str  # where the file was last seen, to find it again after a rotation
    offset: int
    generation: int = 0


@dataclass
class Positions:
    """Confirmed positions of every file being read; serialised to the state file."""

    files: dict[FileId, SavedPosition] = field(default_factory=dict)
    generations: dict[FileId, int] = field(default_factory=dict)  # current, in memory only
    finished: dict[FileId, int] = field(default_factory=dict)  # closed file -> final offset
    dirty: bool = False

    def start(self, file: FileId, path: str, offset: int) -> None:
        """Begin tracking ``file`` at ``path`` from ``offset`` (already confirmed)."""
        generation = self.generations.get(file, 0)
        self.generations[file] = generation
        current = self.files.get(file)
        if current is None or current.offset != offset or current.path != path:
            self.files[file] = SavedPosition(path, offset, generation)
            self.dirty = True

    def truncated(self, file: FileId, path: str) -> None:
        generation = self.generations.get(file, 0) + 1
        self.generations[file] = generation
        self.files[file] = SavedPosition(path, 0, generation)
        self.dirty = True

    def finish(self, file: FileId, final_offset: int) -> None:
        """``file`` was closed after reading up to ``final_offset``; forget it once confirmed."""
        self.finished[file] = final_offset
        self._forget_if_done(file)

    def confirm(self, token: Token) -> None:
        saved = self.files.get(token.file)
        if saved is None or token.generation != self.generations.get(token.file):
            return
        if token.offset > saved.offset or saved.generation != token.generation:
            saved.offset = token.offset
            saved.generation = token.generation
            self.dirty = True
        self._forget_if_done(token.file)

    def _forget_if_done(self, file: FileId) -> None:
        final = self.finished.get(file)
        saved = self.files.get(file)
        if final is not None and (saved is None or saved.offset >= final):
            self.files.pop(file, None)
            self.finished.pop(file, None)
            self.generations.pop(file, None)
            self.dirty = True

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "files": [
            {"dev": file.dev, "ino": file.ino, "path": saved.path, "offset": saved.offset}
            for file, saved in sorted(self.files.items())]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Positions:
        positions = cls()
        for entry in data.get("files", []):
            file = FileId(int(entry["dev"]), int(entry["ino"]))
            positions.files[file] = SavedPosition(str(entry["path"]), int(entry["offset"]))
        return positions
