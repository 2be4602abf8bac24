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
from curate.manifest import Manifest, StageEntry

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

    def stage_shard(self, stage: StageEntry | str, index: int) -> Path:
        """The annotation shard of ``stage`` (an entry or its directory name) for data shard ``index``."""
        dirname = stage.dir if isinstance(stage, StageEntry) else stage
        return self.stage_dir(dirname) / shard_name(index)

    # manifest
    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def manifest(self) -> Manifest:
        """The typed manifest (an empty one when the run has none yet)."""
        if not self.manifest_path.is_file():
            return Manifest()
        try:
            return Manifest.model_validate_json(self.manifest_path.read_bytes())
        except ValueError as exc:
            raise CurateError(f"{self.manifest_path}: corrupt manifest ({str(exc).splitlines()[0]}); "
                              "delete the run directory or rerun with --force") from None

    def save_manifest(self, manifest: Manifest) -> None:
        write_json(manifest.model_dump(mode="json"), self.manifest_path)

    def require(self) -> Manifest:
        """The manifest of an existing run, or a clear error."""
        if not self.exists():
            raise CurateError(f"{self.root}: not a run directory (no {MANIFEST}); create it with 'curate run PIPELINE.yaml'")
        return self.manifest()

    def require_finished(self, action: str = "use it") -> Manifest:
        """The manifest of a run that finished, or one message saying how to finish it."""
        manifest = self.require()
        if not manifest.finished:
            raise CurateError(f"{self.root}: the run did not finish; rerun 'curate run' on its pipeline "
                              f"(it resumes where it stopped) before you {action}")
        return manifest

    def finished_stages(self) -> list[StageEntry]:
        return self.manifest().finished_stages()

    def stage(self, ref: str | int) -> StageEntry:
        return self.manifest().stage(ref)

    # shards
    def data_shards(self) -> list[Path]:
        return sorted(self.data_dir.glob("part-*.parquet"))

    def quarantine_shards(self) -> list[Path]:
        return sorted(self.quarantine_dir.glob("part-*.parquet"))

    @staticmethod
    def clear(path: Path) -> None:
        if path.exists():
            shutil.rmtree(path)
