"""Embeddings of many encoded images through the ``embed`` stage (timm backend), cached on disk by the
stage's own embedding cache, so benchmarks that share images embed them once."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

DEFAULT_CACHE = Path.home() / ".cache" / "curate-benchmarks"


def embed_images(blobs: list[bytes], ids: list[str], *, model: str = "tf_efficientnet_lite0",
                 pretrained: str = "packaged", image_size: int | None = 160, cache_dir: Path = DEFAULT_CACHE,
                 shard: int = 2000, **params) -> np.ndarray:
    """``(n, D)`` L2-normalised embeddings of ``blobs`` (ids must be unique content keys)."""
    from curate.embeddings.cache import to_matrix
    from curate.stages.base import StageContext
    from curate.stages.embed import Embed, EmbedParams

    stage = Embed(EmbedParams(backend="timm", model=model, pretrained=pretrained, image_size=image_size, **params),
                  StageContext(stage_index=0, cache_dir=Path(cache_dir)))
    stage.setup()
    parts = []
    t0 = time.perf_counter()
    for s in range(0, len(blobs), shard):
        out = stage.process(pa.table({"id": ids[s:s + shard], "image": pa.array(blobs[s:s + shard], pa.binary())}))
        parts.append(to_matrix(out.column("image_embedding"))[0])
        done = s + len(parts[-1])
        print(f"\r  embedded {done}/{len(blobs)} ({done / (time.perf_counter() - t0):.0f} img/s)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    if stage.decoder is not None:
        stage.decoder.close()
    return np.concatenate(parts)
