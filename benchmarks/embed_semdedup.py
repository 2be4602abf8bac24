"""Semantic dedup: caption similarity on COCO with a real text model, and SemDeDup at scale.

    python benchmarks/embed_semdedup.py coco            # all-MiniLM-L6-v2 (packaged, offline) on coco-mini
    python benchmarks/embed_semdedup.py scale --n 1000000 --dim 512

``coco``: the 795 human captions of coco-mini (5 per image) embedded with all-MiniLM-L6-v2. How well
does cosine similarity separate caption pairs of the same image from pairs of different images (AUROC
over all pairs), and what does ``semantic_dedup`` flag at a few ``eps`` values (share of flagged items
whose kept representative describes the same image)?

``scale``: time and peak RSS of ``semantic_dedup`` on N random unit vectors with 1% planted near-copies,
and, on a subsample small enough for it, exact all-pairs search (the obvious alternative) in the same run:
recall of the planted copies and time of both.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
COCO = REPO.parent / "shared" / "data" / "coco-mini"


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def coco(args) -> None:
    from sklearn.metrics import roc_auc_score

    from curate.embeddings.semantic_dedup import semantic_dedup
    from curate.models import load_text_encoder

    if not COCO.is_dir():
        sys.exit(f"coco-mini not found at {COCO}")
    caps, img = [], []
    for split in ("train2017", "val2017"):
        doc = json.loads((COCO / "annotations" / f"captions_{split}.json").read_text())
        for a in sorted(doc["annotations"], key=lambda a: (a["image_id"], a["id"])):
            caps.append(a["caption"].strip())
            img.append(a["image_id"])
    img = np.array(img)
    enc = load_text_encoder("all-MiniLM-L6-v2", device=args.device)
    t0 = time.perf_counter()
    e = enc.encode_texts(caps, batch_size=64)
    t_embed = time.perf_counter() - t0
    sims = e @ e.T
    iu = np.triu_indices(len(caps), k=1)
    same = (img[:, None] == img[None, :])[iu]
    auc = roc_auc_score(same, sims[iu])
    print(f"coco-mini captions: {len(caps)} captions of {len(set(img))} images, embedded in {t_embed:.1f}s "
          f"({len(caps) / t_embed:.0f} captions/s, all-MiniLM-L6-v2, {enc.device})")
    print(f"pairs: {same.sum()} same-image, {(~same).sum()} different-image; mean cosine {sims[iu][same].mean():.3f} "
          f"vs {sims[iu][~same].mean():.3f}")
    print(f"AUROC (cosine separates same-image from different-image caption pairs): {auc:.4f}")
    # the obvious alternative: exact duplicate captions after lower-casing
    norm = [c.lower().rstrip(" .") for c in caps]
    exact = len(norm) - len(set(norm))
    print(f"exact duplicates after lower-casing: {exact}")
    print(f"{'eps':>6} {'threshold':>9} {'flagged':>8} {'same-image':>10}   least similar flagged pair")
    for eps in args.eps:
        res = semantic_dedup(e, eps=eps, clusters=None)
        flagged = np.flatnonzero(res.duplicate)
        same_img = (img[flagged] == img[res.representative[flagged]]).mean() if len(flagged) else float("nan")
        ex = ""
        if len(flagged):
            i = flagged[np.argmin(res.nn_similarity[flagged])]  # the least similar pair still flagged
            ex = f"{caps[i]!r} ~ {caps[res.representative[i]]!r}"
        print(f"{eps:6.2f} {1 - eps:9.2f} {len(flagged):8d} {same_img:10.1%}   {ex[:110]}")


def scale(args) -> None:
    from curate.embeddings.neighbors import have_faiss, knn, normalise
    from curate.embeddings.semantic_dedup import semantic_dedup

    rng = np.random.default_rng(0)
    n, d = args.n, args.dim
    t0 = time.perf_counter()
    x = rng.standard_normal((n, d), dtype=np.float32)
    x = normalise(x)
    n_copies = n // 100
    src = rng.choice(n // 2, n_copies, replace=False)
    dst = n // 2 + rng.choice(n - n // 2, n_copies, replace=False)
    noise = rng.standard_normal((n_copies, d), dtype=np.float32) * (0.1 / np.sqrt(d))  # cosine ~0.995
    x[dst] = normalise(x[src] + noise)
    gen = time.perf_counter() - t0
    base = peak_rss_gib()
    print(f"{n} random {d}-d unit vectors ({x.nbytes / 2**30:.2f} GiB) with {n_copies} planted near-copies "
          f"(made in {gen:.1f}s); k-means backend: {'faiss' if have_faiss() else 'scikit-learn'}")
    t0 = time.perf_counter()
    res = semantic_dedup(x, eps=args.eps_scale)
    t = time.perf_counter() - t0
    found = res.duplicate[dst].mean()
    false = res.duplicate.sum() - res.duplicate[dst].sum()
    print(f"semantic_dedup: {t:.1f}s, {res.n_clusters} clusters (largest {res.largest_cluster}), "
          f"recall of planted copies {found:.1%}, other rows flagged {false}; "
          f"peak RSS {peak_rss_gib():.2f} GiB (data alone {base:.2f} GiB before)")
    # the obvious alternative, exact all-pairs nearest neighbour, on a subsample it can afford
    m = min(n, args.exact_n)
    sub = np.sort(np.concatenate([dst[: m // 100], src[: m // 100],
                                  rng.choice(n, m - 2 * (m // 100), replace=False)]))
    sub = np.unique(sub)[:m]
    xs = x[sub]
    t0 = time.perf_counter()
    sims, _ = knn(xs, 1)
    t_exact = time.perf_counter() - t0
    t0 = time.perf_counter()
    res_s = semantic_dedup(xs, eps=args.eps_scale)
    t_sd = time.perf_counter() - t0
    exact_dup = sims[:, 0] > 1 - args.eps_scale
    print(f"subsample of {len(sub)}: exact all-pairs kNN {t_exact:.1f}s finds {exact_dup.sum()} rows with a neighbour "
          f"above {1 - args.eps_scale:.2f} (both members of each pair); semantic_dedup {t_sd:.1f}s flags "
          f"{res_s.duplicate.sum()} (one per pair) -> speed-up {t_exact / t_sd:.1f}x; all-pairs on all {n} rows "
          f"would take about {t_exact * (n / len(sub)) ** 2 / 3600:.1f} h")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("coco")
    c.add_argument("--device", default="cpu")
    c.add_argument("--eps", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.15, 0.2, 0.3])
    s = sub.add_parser("scale")
    s.add_argument("--n", type=int, default=1_000_000)
    s.add_argument("--dim", type=int, default=512)
    s.add_argument("--eps-scale", type=float, default=0.05)
    s.add_argument("--exact-n", type=int, default=50_000)
    args = ap.parse_args()
    coco(args) if args.cmd == "coco" else scale(args)


if __name__ == "__main__":
    main()
