"""``farloom watch`` as a real subprocess tailing real files into the test stack's broker."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from farloom_tasks import processes
from tests.integration.click_queue import Delivered, click_ids, drain
from tests.support.stack import Stack
from tests.support.waiting import wait_for


def _line(click_id: str) -> str:
    return json.dumps({"click_id": click_id, "ad_id": "ad7", "clicked_at": time.time() - 1}) + "\n"


def _append(path: Path, ids: list[str]) -> None:
    with path.open("a") as handle:
        handle.writelines(_line(click_id) for click_id in ids)


class Watcher:
    def __init__(self, stack: Stack, tmp_path: Path, *paths: Path) -> None:
        self.stack, self.paths = stack, paths
        self.state = tmp_path / "state.json"
        self.log_path = tmp_path / "watch.log"
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        log = self.log_path.open("a")
        self.process = self.stack.spawn(
            "watch", *map(str, self.paths), "--state-file", str(self.state),
            "--poll-interval", "0.05", "--rotate-linger", "0.5", "--state-interval", "0.1",
            log=log)
        log.close()

    def log(self) -> str:
        return self.log_path.read_text()

    def confirmed_offset(self, path: Path) -> int:
        """The state file's offset for the file now at ``path``."""
        try:
            state = json.loads(self.state.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return -1
        ino = path.stat().st_ino
        return next((entry["offset"] for entry in state["files"] if entry["ino"] == ino), -1)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None:
            processes.stop(self.process, sig=sig, grace=30)
        self.process = None


@pytest.fixture
def watchers() -> Iterator[list[Watcher]]:
    started: list[Watcher] = []
    yield started
    for watcher in started:
        watcher.stop(signal.SIGKILL)


def _collect_until(stack: Stack, seen: list[Delivered], expected: set[str]) -> None:
    def all_there(got: list[Delivered]) -> bool:
        return set(click_ids(seen + got)) >= expected

    seen.extend(drain(stack, until=all_there, timeout=60))


def test_watch_follows_a_rename_rotation_and_a_copytruncate(
        stack: Stack, tmp_path: Path, watchers: list[Watcher]) -> None:
    log_file = tmp_path / "clicks.log"
    watcher = Watcher(stack, tmp_path, log_file)
    watchers.append(watcher)
    watcher.start()  # before the file exists: it is picked up when it appears
    seen: list[Delivered] = []

    _append(log_file, [f"a{n}" for n in range(200)])
    with log_file.open("a") as handle:
        handle.write("this is not json\n")
        handle.write(_line("a-partial")[:20])  # a line still being written
    _collect_until(stack, seen, {f"a{n}" for n in range(200)})
    assert "a-partial" not in click_ids(seen)

    # Rename rotation; the old writer finishes its line and one more before reopening.
    rotated = tmp_path / "clicks.log.1"
    log_file.rename(rotated)
    with rotated.open("a") as handle:
        handle.write(_line("a-partial")[20:])
    _append(rotated, ["a-late"])
    _append(log_file, [f"b{n}" for n in range(150)])
    _collect_until(stack, seen, {"a-partial", "a-late", *(f"b{n}" for n in range(150))})

    # copytruncate: copy, then truncate in place; the watcher must start over at 0.
    shutil.copyfile(log_file, tmp_path / "clicks.log.2")
    os.truncate(log_file, 0)
    wait_for("the truncation to be noticed",
             lambda: "was truncated" in watcher.log(), 30, poll=0.05)
    _append(log_file, [f"c{n}" for n in range(100)])
    expected = {f"{prefix}{n}" for prefix, count in (("a", 200), ("b", 150), ("c", 100))
                for n in range(count)} | {"a-partial", "a-late"}
    _collect_until(stack, seen, expected)

    ids = Counter(click_ids(seen))
    assert set(ids) == expected
    assert max(ids.values()) == 1
    garbage = [message for message in seen if message.body == b"this is not json"]
    assert len(garbage) == 1  # published unchanged, for ingest to dead-letter
    assert garbage[0].decoded().dead_letters[0].rejection.code == "invalid_json"


def test_a_restarted_watcher_neither_skips_nor_resends_lines(
        stack: Stack, tmp_path: Path, watchers: list[Watcher]) -> None:
    log_file = tmp_path / "clicks.log"
    _append(log_file, [f"r{n}" for n in range(500)])
    watcher = Watcher(stack, tmp_path, log_file)
    watchers.append(watcher)
    watcher.start()
    size = log_file.stat().st_size
    wait_for("the state to reach the end",
             lambda: watcher.confirmed_offset(log_file) == size, 30, poll=0.05)
    watcher.stop(signal.SIGKILL)  # no goodbye: only what is in the state file counts

    _append(log_file, [f"r{n}" for n in range(500, 800)])  # written while it is down
    watcher.start()
    _append(log_file, [f"r{n}" for n in range(800, 1000)])
    size = log_file.stat().st_size
    wait_for("the state to reach the end",
             lambda: watcher.confirmed_offset(log_file) == size, 30, poll=0.05)
    watcher.stop()

    ids = Counter(click_ids(drain(stack)))
    assert set(ids) == {f"r{n}" for n in range(1000)}
    assert max(ids.values()) == 1


def test_a_file_rotated_while_the_watcher_was_down_is_finished_after_the_restart(
        stack: Stack, tmp_path: Path, watchers: list[Watcher]) -> None:
    log_file = tmp_path / "clicks.log"
    _append(log_file, [f"s{n}" for n in range(100)])
    watcher = Watcher(stack, tmp_path, log_file)
    watchers.append(watcher)
    watcher.start()
    size = log_file.stat().st_size
    wait_for("the state to reach the end",
             lambda: watcher.confirmed_offset(log_file) == size, 30, poll=0.05)
    watcher.stop(signal.SIGKILL)

    _append(log_file, [f"s{n}" for n in range(100, 150)])  # still in the old file...
    log_file.rename(tmp_path / "clicks.log.1")  # ...which is rotated away while it is down
    _append(log_file, [f"t{n}" for n in range(80)])
    watcher.start()
    expected = {f"s{n}" for n in range(150)} | {f"t{n}" for n in range(80)}
    seen: list[Delivered] = []
    _collect_until(stack, seen, expected)
    watcher.stop()

    ids = Counter(click_ids(seen))
    assert set(ids) == expected
    assert max(ids.values()) == 1
