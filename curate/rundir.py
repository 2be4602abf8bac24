"""The run directory: the one source of truth for a run (layout in docs/architecture.md).

::

    runs/<name>/
      manifest.json
      data/part-00000.parquet ...
      stages/<NN>-<stage>/part-00000.parquet ...
      quarantine/part-00000.parquet ...
      cache/ review.db export/ report/

Every file is written to a temporary name and renamed when complete, so a file that exists is whole.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from curate.errors import CurateError

MANIFEST = "manifest.json"


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``final``; rename it to ``final`` if the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_table(table: pa.Table, path: Path) -> None:
    """Write a Parquet file atomically."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def write_json(obj: Any, path: Path) -> None:
    """Write JSON atomically (pretty, UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


class RunDir:
    """Paths and manifest of one run directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # layout
    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def stages_dir(self) -> Path:
        return self.root / "stages"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    @property
    def review_db(self) -> Path:
        return self.root / "review.db"

    def stage_dir(self, dirname: str) -> Path:
        return self.stages_dir / dirname

    def data_shard(self, index: int) -> Path:
        return self.data_dir / shard_name(index)

    # manifest
    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def load_manifest(self) -> dict[str, Any]:
        if not self.manifest_path.is_file():
            return {}
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise CurateError(f"{self.manifest_path}: corrupt manifest ({exc}); delete the run directory or rerun with --force") from None

    def save_manifest(self, manifest: dict[str, Any]) -> None:
        write_json(manifest, self.manifest_path)

    def require(self) -> dict[str, Any]:
        """The manifest of an existing run, or a clear error."""
        if not self.exists():
            raise CurateError(f"{self.root}: not a run directory (no {MANIFEST}); create it with 'curate run PIPELINE.yaml'")
        return self.load_manifest()

    # shards
    def data_shards(self) -> list[Path]:
        return sorted(self.data_dir.glob("part-*.parquet"))

    def stage_dirs(self) -> list[Path]:
        """Stage directories of the last run, in pipeline order (from the manifest)."""
        m = self.load_manifest()
        return [self.stage_dir(s["dir"]) for s in m.get("stages", [])]

    def quarantine_shards(self) -> list[Path]:
        return sorted(self.quarantine_dir.glob("part-*.parquet"))

    @staticmethod
    def clear(path: Path) -> None:
        if path.exists():
            shutil.rmtree(path)
