"""Archives of raw partitions keep the custom dimensions (migration 0014), and an archive
written before 0014 still restores, its clicks without dimensions.

Old partitions are crafted by storing old clicks as ingest does (retention 0), then
archived and dropped by the maintenance task with a retention, as in test_retention.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from farloom_tasks.core.clicks import Click
from farloom_tasks.core.partitions import DAY, HOUR, start_of
from farloom_tasks.core.windows import to_datetime
from farloom_tasks.pipeline import retention
from farloom_tasks.stores import archive, partitions
from farloom_tasks.stores.raw import RawStore
from tests.support.archives import rewrite_without
from tests.support.database import sql
from tests.support.stack import Stack

RAW = partitions.RAW_CLICKS
COLUMNS = "click_id, ad_id, clicked_at, user_id, country, device, campaign_id, dimensions"
# JSON and COPY text both escape some of these (tab, newline, backslash, quotes); also
# non-ASCII and the most entries a click may carry. Stored directly, not validated.
DIMENSIONS: list[dict[str, str] | None] = [
    None, {"os": "13", "device_model": "1"}, {"os": "tab\there", "note": "back\\slash"},
    {"os": "line\nbreak"}, {"os": "\"quoted\" 'x'", "lang": "\u00e9t\u00e9 \u4e2d"},
    {f"d{n}": str(n) for n in range(16)},
]


def _clicks(start: int, prefix: str, count: int) -> list[Click]:
    return [Click(f"{prefix}-{i}", f"ad-{i % 7}", start + (i * 41) % HOUR + 0.5,
                  user_id=f"u{i}", country="DE" if i % 2 else None,
                  dimensions=DIMENSIONS[i % len(DIMENSIONS)]) for i in range(count)]


def _store(stack: Stack, clicks: list[Click]) -> None:
    engine = stack.engine()
    store = RawStore(engine, stack.settings.shard_count, HOUR)
    try:
        store.commit_batch(clicks)
    finally:
        store.close()
        engine.dispose()


def _rows(stack: Stack, start: int) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in sql(
        stack, f"SELECT {COLUMNS} FROM raw.ad_clicks WHERE minute >= :s AND minute < :e "
        "ORDER BY click_id", s=to_datetime(start), e=to_datetime(start + HOUR))]


def _archive(stack: Stack, archive_dir: Path, start: int) -> Path:
    settings = stack.with_settings(raw_retention_days=2, archive_dir=str(archive_dir)).settings
    engine = stack.engine()
    try:
        retention.maintain(engine, settings, time.time())
    finally:
        engine.dispose()
    assert _rows(stack, start) == []
    return archive.manifest_path_for(archive_dir, RAW, start, start + HOUR)


def test_an_archived_partition_keeps_every_click_s_dimensions(stack: Stack,
                                                               tmp_path: Path) -> None:
    # Hours no other test archives (a restored partition is never dropped again).
    start = start_of(time.time() - 9 * DAY - 3 * HOUR, HOUR)
    _store(stack, _clicks(start, "dim", 60))
    before = _rows(stack, start)
    assert {json.dumps(row[-1], sort_keys=True) for row in before} == {
        json.dumps(d, sort_keys=True) for d in DIMENSIONS}

    manifest_path = _archive(stack, tmp_path / "archive", start)
    manifest, _ = archive.read_manifest(manifest_path)
    assert "dimensions" in manifest.columns and manifest.rows == 60

    done = stack.farloom("archive", "restore", str(manifest_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert _rows(stack, start) == before


def test_an_archive_written_before_migration_0014_restores_without_dimensions(
        stack: Stack, tmp_path: Path) -> None:
    start = start_of(time.time() - 10 * DAY - 7 * HOUR, HOUR)
    _store(stack, _clicks(start, "pre", 30))
    before = _rows(stack, start)
    manifest_path = _archive(stack, tmp_path / "archive", start)
    # Rewrite it as 0013 wrote it: the same COPY text without the column 0014 added.
    rewrite_without(manifest_path, {"dimensions"})

    done = stack.farloom("archive", "restore", str(manifest_path))

    assert done.returncode == 0, done.stderr[-2000:]
    after = _rows(stack, start)
    assert [row[:-1] for row in after] == [row[:-1] for row in before]
    assert {row[-1] for row in after} == {None}
