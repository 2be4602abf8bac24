"""Throughput of the ``embed`` stage against a naive loop and the forward-pass-only ceiling.

    python benchmarks/embed_throughput.py --device cpu --model ViT-B-32 --batch-size 64 --n 512
    python benchmarks/embed_throughput.py --device cuda --model ViT-L-14 --batch-size 256 --n 20000 \\
        --images ../shared/data/cifar10-jpg/train.zip

    python benchmarks/embed_throughput.py --backend timm --device cpu --model tf_efficientnet_lite0 \
        --pretrained packaged --image-size 160 --n 2000 --repeat 3

Weights are random (``--pretrained none``, the default for open_clip): speed does not depend on them. With
``--backend timm`` the default is the packaged EfficientNet-Lite0 weights and the runtime is the stage's
(``--runtime auto``: onnxruntime on the CPU). Three figures, measured in the same run on the same images:

* stage path: ``Embed.process`` on a table of encoded images, exactly what ``curate run`` calls per
  shard (decoding in worker processes, uint8 pixels, normalisation on the device, cache off);
* naive loop: open, preprocess (open_clip's / timm's own transform), encode one image at a time in PyTorch;
* ceiling: the model's forward pass alone on random inputs of the same batch size (no decoding), with the
  stage's runtime (for timm on the CPU: the same onnxruntime session, fed uint8 pixels).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_IMAGES = REPO.parent / "shared" / "data" / "cifar10-jpg" / "train.zip"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def load_images(src: Path, n: int) -> list[bytes]:
    """The first ``n`` encoded images of a zip or a folder (cycled if there are fewer)."""
    if not src.exists():
        sys.exit(f"images not found: {src} (give --images DIR_OR_ZIP; the default needs ../shared/data)")
    blobs: list[bytes] = []
    if src.is_file() and src.suffix == ".zip":
        with zipfile.ZipFile(src) as z:
            for name in z.namelist():
                if name.lower().endswith(IMAGE_SUFFIXES):
                    blobs.append(z.read(name))
                    if len(blobs) >= n:
                        break
    else:
        for p in sorted(src.rglob("*")):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                blobs.append(p.read_bytes())
                if len(blobs) >= n:
                    break
    if not blobs:
        sys.exit(f"no images in {src}")
    while len(blobs) < n:
        blobs.extend(blobs[: n - len(blobs)])
    return blobs


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default="open_clip", choices=["open_clip", "timm"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default=None, help="default ViT-B-32 (open_clip), tf_efficientnet_lite0 (timm)")
    ap.add_argument("--pretrained", default=None,
                    help="tag, checkpoint file or none (random weights; the open_clip default); timm default: packaged")
    ap.add_argument("--runtime", default="auto", help="timm backend: auto, torch or onnx")
    ap.add_argument("--image-size", type=int, default=None, help="timm backend: input side")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="a zip or a folder of images")
    ap.add_argument("--n", type=int, default=512, help="images through the stage path")
    ap.add_argument("--naive-n", type=int, default=None, help="images through the naive loop (default min(n, 256))")
    ap.add_argument("--num-workers", default="auto", help="decoding workers of the stage path")
    ap.add_argument("--repeat", type=int, default=1,
                    help="measure stage and ceiling this many times, interleaved, and keep the best of each "
                         "(steadier figures on a shared machine)")
    ap.add_argument("--fast-jpeg", action="store_true", help="embed's fast_jpeg: true (reduced-scale JPEG decoding)")
    ap.add_argument("--shard-size", type=int, default=1000, help="rows per Embed.process call (a data shard)")
    args = ap.parse_args()

    import numpy as np
    import pyarrow as pa
    import torch
    from PIL import Image
    import io

    from curate.stages.embed import Embed, EmbedParams

    blobs = load_images(args.images, args.n)
    workers = args.num_workers if args.num_workers == "auto" else int(args.num_workers)
    timm_backend = args.backend == "timm"
    common = dict(device=args.device, precision=args.precision, batch_size=args.batch_size, num_workers=workers,
                  cache=False, fast_jpeg=args.fast_jpeg)
    if timm_backend:
        params = EmbedParams(backend="timm", model=args.model or "tf_efficientnet_lite0",
                             pretrained=args.pretrained or "packaged", runtime=args.runtime,
                             image_size=args.image_size, **common)
    else:
        params = EmbedParams(model=args.model or "ViT-B-32", pretrained=args.pretrained or "none", text=False, **common)
    stage = Embed(params, None)
    t0 = time.perf_counter()
    stage.setup()
    clip = stage.encoder
    dev = clip.device
    runtime = getattr(clip, "runtime", "torch")
    print(f"model {params.model} ({clip.source.kind} weights) on {dev} via {runtime}, {clip.precision}, batch "
          f"{args.batch_size}, input {clip.image_size}, decode workers {stage.decoder.num_workers}, torch threads "
          f"{torch.get_num_threads()}, setup {time.perf_counter() - t0:.1f}s", flush=True)
    if dev.startswith("cuda"):
        print(f"GPU: {torch.cuda.get_device_name(0)}", flush=True)
    print(f"images: {args.images} ({len(blobs)} images, mean {np.mean([len(b) for b in blobs]) / 1024:.1f} KiB)", flush=True)

    # warm-up: start the decode workers, compile kernels, settle cudnn/cublas heuristics
    warm = pa.table({"id": [str(i) for i in range(2 * args.batch_size)], "image": blobs[: 2 * args.batch_size]})
    stage.process(warm)
    sync(dev)

    def stage_path() -> float:
        t0 = time.perf_counter()
        for s in range(0, len(blobs), args.shard_size):
            part = blobs[s:s + args.shard_size]
            out = stage.process(pa.table({"id": [str(i) for i in range(s, s + len(part))], "image": part}))
            assert out.column("image_embedding").null_count == 0
        sync(dev)
        return time.perf_counter() - t0

    h, w = clip.image_size
    n_batches = max(1, len(blobs) // args.batch_size)

    def ceiling_timm() -> float:
        """The encoder's own forward (same runtime as the stage) on random uint8 pixels already in memory."""
        px = np.random.default_rng(0).integers(0, 255, (args.batch_size, h, w, 3), dtype=np.uint8)
        if runtime == "torch":
            px = torch.as_tensor(px).to(dev)
        for _ in range(2):
            clip.encode_pixels(px, to_numpy=False)
        sync(dev)
        t0 = time.perf_counter()
        for _ in range(n_batches):
            clip.encode_pixels(px, to_numpy=False)
        sync(dev)
        return time.perf_counter() - t0

    def ceiling_clip() -> float:
        x = torch.randn(args.batch_size, 3, h, w, device=dev, dtype=clip.dtype)
        with torch.inference_mode():
            for _ in range(2):
                clip.model.encode_image(x)
            sync(dev)
            t0 = time.perf_counter()
            for _ in range(n_batches):
                f = clip.model.encode_image(x)
                torch.nn.functional.normalize(f.float(), dim=-1)
            sync(dev)
            return time.perf_counter() - t0

    ceiling = ceiling_timm if timm_backend else ceiling_clip

    # 1. stage path and 3. forward-only ceiling (random tensors already on the device, same batch size),
    # interleaved when repeated
    stage_s, ceil_s = float("inf"), float("inf")
    for r in range(args.repeat):
        stage_s = min(stage_s, stage_path())
        ceil_s = min(ceil_s, ceiling())
    stage_ips = len(blobs) / stage_s
    ceil_ips = n_batches * args.batch_size / ceil_s
    best = f", best of {args.repeat}" if args.repeat > 1 else ""
    print(f"stage path : {stage_ips:10.1f} img/s  ({len(blobs)} images in {stage_s:.2f}s{best})", flush=True)

    # decoding alone (the workers, no model): the other ceiling
    chunks = [blobs[i:i + args.batch_size] for i in range(0, len(blobs), args.batch_size)]
    t0 = time.perf_counter()
    for _pixels, _ok in stage.decoder.imap(chunks):
        pass
    decode_s = time.perf_counter() - t0
    print(f"decode only: {len(blobs) / decode_s:10.1f} img/s  ({stage.decoder.num_workers} workers, no model)", flush=True)

    # 2. naive loop: one image at a time, the library's own preprocess, eager PyTorch
    naive_n = args.naive_n or min(len(blobs), 256)
    if timm_backend:
        import timm.data

        cfg = timm.data.resolve_data_config({}, model=clip.net)
        cfg["input_size"] = (3, h, w)
        cfg["mean"] = tuple(m / 255 for m in clip.mean)
        cfg["std"] = tuple(s / 255 for s in clip.std)
        preprocess = timm.data.create_transform(**cfg)
        net = clip.net.to(dev)

        def encode_one(one):
            return net.forward_head(net.forward_features(one), pre_logits=True)
        dtype = torch.float32
    else:
        preprocess, dtype = clip.preprocess, clip.dtype

        def encode_one(one):
            return clip.model.encode_image(one)
    with torch.inference_mode():
        for b in blobs[:4]:
            encode_one(preprocess(Image.open(io.BytesIO(b)).convert("RGB")).unsqueeze(0).to(dev, dtype))
        sync(dev)
        t0 = time.perf_counter()
        for b in blobs[:naive_n]:
            one = preprocess(Image.open(io.BytesIO(b)).convert("RGB")).unsqueeze(0).to(dev, dtype)
            f = encode_one(one)
            (f / f.norm(dim=-1, keepdim=True)).float().cpu()
        naive_s = time.perf_counter() - t0
    naive_ips = naive_n / naive_s
    print(f"naive loop : {naive_ips:10.1f} img/s  ({naive_n} images in {naive_s:.2f}s)", flush=True)

    print(f"ceiling    : {ceil_ips:10.1f} img/s  (forward only, {n_batches} batches in {ceil_s:.2f}s{best})", flush=True)
    print(f"stage / ceiling = {stage_ips / ceil_ips:.1%}   stage / naive = {stage_ips / naive_ips:.1f}x", flush=True)
    if stage.decoder is not None:
        stage.decoder.close()


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
