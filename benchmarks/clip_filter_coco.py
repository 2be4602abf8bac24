"""CLIP-score quality on coco-mini: AUROC of the CLIP score for true vs swapped captions.

    python benchmarks/clip_filter_coco.py --pretrained laion2b_s34b_b79k          # needs the weights cached
    python benchmarks/clip_filter_coco.py --pretrained /path/to/open_clip_model.safetensors
    python benchmarks/clip_filter_coco.py --pretrained none                        # random weights: ~0.5, a smoke test

Every image of coco-mini (159) is paired with each of its 5 human captions (positives, 795) and with
the first caption of another image (negatives): an "easy" swap (an image with no COCO category in
common) and a "hard" swap (an image sharing at least one category), from the instances annotations.
The CLIP score is the one the ``clip_filter`` stage uses (cosine of the L2-normalised embeddings,
computed by ``curate.embeddings.encode``). Reports AUROC for positives vs each kind of negative and the
share of negatives a 0.25 threshold would catch.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
COCO = REPO.parent / "shared" / "data" / "coco-mini"


def load(split: str, root: Path):
    caps = json.loads((root / "annotations" / f"captions_{split}.json").read_text())
    inst = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
    cats: dict[int, set] = {}
    for a in inst["annotations"]:
        cats.setdefault(a["image_id"], set()).add(a["category_id"])
    by_img: dict[int, list[str]] = {}
    for a in sorted(caps["annotations"], key=lambda a: a["id"]):
        by_img.setdefault(a["image_id"], []).append(a["caption"].strip())
    files = {im["id"]: root / split / im["file_name"] for im in caps["images"]}
    return [(i, files[i], by_img[i], cats.get(i, set())) for i in sorted(by_img) if files[i].is_file()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--pretrained", required=True, help="open_clip tag, checkpoint file, or none")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threshold", type=float, default=0.25)
    ap.add_argument("--coco", type=Path, default=COCO, help="coco-mini folder (default ../shared/data/coco-mini)")
    args = ap.parse_args()
    if not args.coco.is_dir():
        sys.exit(f"coco-mini not found at {args.coco}")
    from sklearn.metrics import roc_auc_score

    from curate.embeddings.encode import embed_images, embed_texts
    from curate.embeddings.images import ImageDecoder, transform_for
    from curate.models import load_clip

    items = load("train2017", args.coco) + load("val2017", args.coco)
    rng = np.random.default_rng(0)
    clip = load_clip(args.model, args.pretrained, args.device, allow_download=False)
    t0 = time.perf_counter()
    img, ok = embed_images(clip, [p.read_bytes() for _, p, _, _ in items], ImageDecoder(transform_for(clip), 0), 32)
    assert ok.all()
    pos_pairs, easy_pairs, hard_pairs = [], [], []
    for k, (_, _, caps, cats) in enumerate(items):
        pos_pairs += [(k, c) for c in caps]
        others = [j for j in range(len(items)) if j != k]
        easy = [j for j in others if cats and not (items[j][3] & cats)]
        hard = [j for j in others if items[j][3] & cats]
        if easy:
            easy_pairs.append((k, items[rng.choice(easy)][2][0]))
        if hard:
            hard_pairs.append((k, items[rng.choice(hard)][2][0]))

    def scores(pairs):
        txt, _ = embed_texts(clip, [c for _, c in pairs], 64)
        return np.einsum("ij,ij->i", img[[k for k, _ in pairs]], txt)

    s_pos, s_easy, s_hard = scores(pos_pairs), scores(easy_pairs), scores(hard_pairs)
    print(f"{args.model} / {args.pretrained} ({clip.source.kind}) on {clip.device}: {len(items)} images, "
          f"{len(s_pos)} true pairs, {len(s_easy)} easy and {len(s_hard)} hard swapped pairs "
          f"({time.perf_counter() - t0:.1f}s)")
    for name, neg in (("easy swap (no shared category)", s_easy), ("hard swap (shares a category)", s_hard),
                      ("all swaps", np.concatenate([s_easy, s_hard]))):
        y = np.r_[np.ones(len(s_pos)), np.zeros(len(neg))]
        auc = roc_auc_score(y, np.r_[s_pos, neg])
        print(f"  AUROC true vs {name:32s} {auc:.4f}   negatives below {args.threshold}: "
              f"{(neg < args.threshold).mean():.1%}, positives below: {(s_pos < args.threshold).mean():.1%}")
    print(f"  mean score: true {s_pos.mean():.3f}, easy swap {s_easy.mean():.3f}, hard swap {s_hard.mean():.3f}")


if __name__ == "__main__":
    main()
