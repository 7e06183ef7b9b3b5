"""Archives as an older Farloom wrote them: a raw partition's archive without the
columns a later migration added, with its manifest and checksum made to match."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Collection
from pathlib import Path

from farloom_tasks.stores import archive


def rewrite_without(manifest_path: Path, columns: Collection[str]) -> None:
    """Rewrite the archive of ``manifest_path`` as if ``columns`` did not exist yet: the
    same COPY text without them, its manifest's columns and checksum to match."""
    manifest, data_path = archive.read_manifest(manifest_path)
    kept = [n for n, c in enumerate(manifest.columns) if c not in columns]
    assert len(kept) == len(manifest.columns) - len(columns)
    lines = gzip.decompress(data_path.read_bytes()).decode().splitlines(keepends=True)
    old_text = "".join("\t".join(line.rstrip("\n").split("\t")[n] for n in kept) + "\n"
                       for line in lines)
    data_path.write_bytes(gzip.compress(old_text.encode()))
    doc = json.loads(manifest_path.read_text())
    doc["columns"] = [manifest.columns[n] for n in kept]
    doc["sha256"] = hashlib.sha256(data_path.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(doc))
