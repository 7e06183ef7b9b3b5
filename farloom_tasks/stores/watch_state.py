"""Where ``farloom watch`` keeps its confirmed positions: one JSON file, replaced durably.

The file is written atomically (temporary file, fsync, rename, fsync of the
directory) so that after a crash or a power cut it holds either the old
positions or the new ones, never a torn mix. The watcher writes it only with
offsets the broker has confirmed (workers/watch.py).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import orjson

from farloom_tasks.core.tail_position import Positions
from farloom_tasks.settings import Settings


class StateFile:
    """The watcher's positions on disk, replaced atomically and durably."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Positions:
        try:
            return Positions.from_json(orjson.loads(self.path.read_bytes()))
        except FileNotFoundError:
            return Positions()
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise SystemExit(f"farloom watch: state file {self.path} is unreadable ({exc}); "
                             f"move it away to start from the beginning of each file") from exc

    def save(self, positions: Positions) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with open(temporary, "wb") as handle:
            handle.write(orjson.dumps(positions.to_json(), option=orjson.OPT_INDENT_2))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself must survive a power cut
        finally:
            os.close(directory)
        positions.dirty = False


def default_state_file(settings: Settings, paths: list[str]) -> Path:
    digest = hashlib.sha1("\0".join(sorted(paths)).encode()).hexdigest()[:12]
    return Path(settings.watch_state_dir).expanduser() / f"watch-{digest}.json"
