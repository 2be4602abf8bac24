"""The run directory: the one source of truth for a run (layout in docs/architecture.md).

::

    runs/<name>/
      manifest.json
      data/part-00000.parquet ...
      stages/<NN>-<stage>/part-00000.parquet ...
      quarantine/part-00000.parquet ...
      cache/ review.db export/ report/

Every file is written to a temporary name and renamed when complete, so a file that exists is whole.
The root may be a local path or an object-storage URL (``s3://bucket/runs/x``): every path goes
through :mod:`curate.storage`, which completes writes there with a temporary key and a server-side
copy instead of a rename.
"""

from __future__ import annotations

from pathlib import Path

from curate import storage
from curate.errors import CurateError
from curate.manifest import Manifest, StageEntry
from curate.storage import Location, atomic_path, write_json, write_table  # noqa: F401  (re-exported)

MANIFEST = "manifest.json"


def shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


class RunDir:
    """Paths and manifest of one run directory."""

    def __init__(self, root: str | Path | Location):
        self.root = storage.location(root)

    # layout
    @property
    def data_dir(self) -> Location:
        return self.root / "data"

    @property
    def stages_dir(self) -> Location:
        return self.root / "stages"

    @property
    def quarantine_dir(self) -> Location:
        return self.root / "quarantine"

    @property
    def cache_dir(self) -> Location:
        """This run's own caches (the review index)."""
        return self.root / "cache"

    def model_cache_for(self, cache: str | None) -> Location:
        """Where stages keep model caches (embeddings, ONNX graphs) for a pipeline's ``cache:`` setting:
        that folder, which several runs may share, else :attr:`cache_dir`."""
        return storage.location(cache) if cache else self.cache_dir

    @property
    def model_cache_dir(self) -> Location:
        """:meth:`model_cache_for` the pipeline this run was last run with (its manifest)."""
        return self.model_cache_for(self.manifest().config.get("cache") if self.exists() else None)

    @property
    def manifest_path(self) -> Location:
        return self.root / MANIFEST

    @property
    def review_db(self) -> Location:
        return self.root / "review.db"

    def stage_dir(self, dirname: str) -> Location:
        return self.stages_dir / dirname

    def data_shard(self, index: int) -> Location:
        return self.data_dir / shard_name(index)

    def stage_shard(self, stage: StageEntry | str, index: int) -> Location:
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
    def data_shards(self) -> list[Location]:
        return sorted(self.data_dir.glob("part-*.parquet"))

    def quarantine_shards(self) -> list[Location]:
        return sorted(self.quarantine_dir.glob("part-*.parquet"))

    @staticmethod
    def clear(path: Location) -> None:
        storage.rmtree(path)
