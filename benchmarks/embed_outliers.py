"""Exact vs approximate kNN for the ``outliers`` stage on synthetic clustered embeddings.

1,000 Gaussian clusters of unit 512-d vectors plus 100 planted random far points; prints time and how
many planted points rank in the top 100 of ``knn_distance`` for exact and approximate (faiss IVF) search.

    python benchmarks/embed_outliers.py
"""

import time, numpy as np
from curate.embeddings.neighbors import normalise
from curate.embeddings.outliers import knn_distance
rng = np.random.default_rng(0)
d = 512
centres = rng.normal(size=(1000, d)).astype(np.float32)
def data(n):
    x = normalise(centres[rng.integers(0, 1000, n)] + 0.5 * rng.normal(size=(n, d)).astype(np.float32))
    planted = rng.choice(n, 100, replace=False)
    x[planted] = normalise(rng.normal(size=(100, d)).astype(np.float32))
    return x, planted
x, planted = data(50_000)
res = {}
for mode in ("exact", "approximate"):
    t = time.perf_counter(); dist = knn_distance(x, 10, search=mode); res[mode] = dist
    top = np.argsort(-dist)[:100]
    print(f"50k x 512 {mode}: {time.perf_counter()-t:.1f} s; planted far points in top 100: {len(set(top) & set(planted))}/100", flush=True)
print(f"50k: corr exact/approx {np.corrcoef(res['exact'], res['approximate'])[0,1]:.4f}", flush=True)
x, planted = data(200_000)
t = time.perf_counter(); dist = knn_distance(x, 10, search="approximate")
top = np.argsort(-dist)[:100]
print(f"200k x 512 approximate: {time.perf_counter()-t:.1f} s; planted far points in top 100: {len(set(top) & set(planted))}/100", flush=True)
