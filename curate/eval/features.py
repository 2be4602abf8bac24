"""What eval's models see, computed the same way for the training items and the test items.

* ``vectors``: an embedding column of a finished stage (a column whose declared role is ``embedding``,
  e.g. ``embed.image_embedding``) or a list in the record's JSON meta (``meta.<key>``). For an
  ``--test`` input, the stage that wrote the column is **run again over the test items** with the run's
  params and the run's embedding cache (``RUN/cache`` or the pipeline's ``cache:``), so test vectors come from the same model and
  preprocessing, and a second eval reuses them.
* ``pixels``: images decoded and resized to ``size`` x ``size`` RGB (uint8), for the CNN.
* ``text``: the record's text (the TF-IDF model fits its vocabulary on the raw training texts).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa

from curate.errors import CurateError
from curate.manifest import Manifest, StageEntry
from curate.record import RECORD_COLUMNS

log = logging.getLogger(__name__)

FeatureKind = Literal["vectors", "pixels", "text"]


@dataclass(frozen=True)
class Features:
    """Which features an eval uses: ``kind`` plus, for vectors, where they come from."""

    kind: FeatureKind
    ref: str                          # what the user sees: "embed.image_embedding", "meta.emb", "pixels", "text"
    stage: StageEntry | None = None   # the stage that wrote the vectors (None for meta.<key>)
    column: str | None = None         # the stage column, or the meta key
    size: int = 32                    # pixels: side in pixels


def embedding_columns(manifest: Manifest) -> list[tuple[StageEntry, str]]:
    """(stage, column) of every finished stage's column with role ``embedding``, latest stage first."""
    out = []
    for s in reversed(manifest.finished_stages()):
        for c in s.outputs.columns:
            if c.role == "embedding":
                out.append((s, c.name))
    return out


def resolve_vectors(manifest: Manifest, ref: str | None, *, prefer: str = "image") -> Features:
    """The vector features named by ``ref`` (``stage.column``, ``column``, ``meta.<key>``) or, with no
    ``ref``, the latest embedding column (the ``prefer`` modality's first)."""
    if ref and ref.startswith("meta."):
        return Features("vectors", ref, None, ref.split(".", 1)[1])
    cols = embedding_columns(manifest)
    names = [s.name for s in manifest.finished_stages()]

    def label(s) -> str:  # the stage's name, or its directory where two stages share the name (two embeds)
        return s.dir if names.count(s.name) > 1 else s.name

    if ref:
        stage_ref, col = ref.split(".", 1) if "." in ref else (None, ref)
        for s, c in cols:
            if c == col and (stage_ref is None or stage_ref in (s.name, s.dir)):
                return Features("vectors", f"{label(s)}.{c}", s, c)
        for s in reversed(manifest.finished_stages()):  # any list column of a stage, even without the role
            if col in s.outputs.names and (stage_ref is None or stage_ref in (s.name, s.dir)):
                return Features("vectors", f"{label(s)}.{col}", s, col)
        known = ", ".join(f"{s.name}.{c}" for s, c in cols) or "none"
        raise CurateError(f"--features: no finished stage has a column {ref!r} (embedding columns of this run: {known}; "
                          "or meta.<key> for a list in the records' meta)")
    if not cols:
        raise CurateError("this model needs vector features: add an embed stage to the pipeline (and rerun it), or "
                          "pass --features meta.<key> for vectors stored with each item; or use --model cnn (images) "
                          "or --model tfidf (text)")
    cols.sort(key=lambda sc: 0 if sc[1].startswith(prefer) else 1)  # stable: latest stage first within a modality
    s, c = cols[0]
    return Features("vectors", f"{label(s)}.{c}", s, c)


def _list_matrix(column) -> tuple[np.ndarray, np.ndarray]:
    from curate.vectors import list_column_to_matrix

    return list_column_to_matrix(column, what="features")


def train_vectors(run, feats: Features, records: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """``(N, D)`` vectors of the run's records (row order of ``read_records``) and the mask of rows that have one."""
    if feats.stage is None:
        from curate.label_noise.features import meta_lists

        return _list_matrix(meta_lists(records.column("meta").to_pylist(), feats.column))
    from curate.shards import read_stage

    t = read_stage(run, feats.stage.dir, ["id", feats.column])
    if t.num_rows != records.num_rows:
        raise CurateError(f"{run.root}: stage {feats.stage.dir} has {t.num_rows} rows but the run has "
                          f"{records.num_rows} records; rerun 'curate run'")
    if feats.column not in t.column_names:
        return np.zeros((records.num_rows, 0), np.float32), np.zeros(records.num_rows, bool)
    return _list_matrix(t.column(feats.column))


def test_vectors(run, feats: Features, records: pa.Table, manifest: Manifest, *, quiet: bool = False,
                 batch_rows: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Vectors of test records: the meta list, or the run's stage run again over them (same params, same cache)."""
    if feats.stage is None:
        return train_vectors(run, feats, records)
    from tqdm.auto import tqdm

    from curate.stages.base import GlobalStage, StageContext, get_stage_class

    entry = feats.stage
    try:
        cls = get_stage_class(entry.name)
    except KeyError:
        raise CurateError(f"stage {entry.name!r} (which wrote {feats.ref}) is not installed here; "
                          "eval must run it over the test set") from None
    if issubclass(cls, GlobalStage):
        raise CurateError(f"{feats.ref} comes from a global stage ({entry.name}), which cannot be run over a test set "
                          "on its own; use --test-split, or features from a map stage such as embed")
    upstream = tuple(s for s in manifest.finished_stages() if s.index < entry.index)
    stage = cls(cls.Params.model_validate(entry.params),
                StageContext(stage_index=entry.index, cache_dir=run.model_cache_dir, workers=1, upstream=upstream))
    cols = stage.input_columns()
    bad = [c for c in cols if c not in RECORD_COLUMNS]
    if bad:
        raise CurateError(f"{feats.ref}: stage {entry.dir} reads {', '.join(bad)} from earlier stages, so it cannot be "
                          "run over the test set alone; use --test-split")
    stage.setup()
    parts = []
    with tqdm(total=records.num_rows, desc=f"test features ({entry.dir})", unit="item", file=sys.stderr,
              disable=quiet) as bar:
        for s in range(0, records.num_rows, batch_rows):
            batch = records.select(["id", *cols]).slice(s, batch_rows)
            out = stage.process(batch)
            parts.append(out.column(feats.column))
            bar.update(batch.num_rows)
    col = pa.chunked_array([c for p in parts for c in (p.chunks if isinstance(p, pa.ChunkedArray) else [p])])
    return _list_matrix(col)


def pixel_matrix(images: list[bytes | None], size: int, *, quiet: bool = False, desc: str = "decode images",
                 chunk: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """``(N, size, size, 3)`` uint8 pixels (zeros where an image is missing or undecodable) and the ok mask."""
    from tqdm.auto import tqdm

    from curate.label_noise.features import pixel_vectors
    from curate.vectors import list_column_to_matrix

    n = len(images)
    out = np.zeros((n, size, size, 3), dtype=np.uint8)
    ok = np.zeros(n, dtype=bool)
    with tqdm(total=n, desc=desc, unit="image", file=sys.stderr, disable=quiet) as bar:
        for s in range(0, n, chunk):
            arr = pixel_vectors(images[s:s + chunk], size=size, mode="rgb")
            m, present = list_column_to_matrix(arr, what="pixels", dtype=np.uint8)
            if m.shape[1]:
                out[s:s + chunk][present] = m[present].reshape(-1, size, size, 3)
            ok[s:s + chunk] = present
            bar.update(len(arr))
    return out, ok
