"""Out-of-sample CIFAR-10N probabilities from a small CNN trained by 5-fold cross-validation.

    python3 benchmarks/label_noise_cifar10n_cnn.py --device cuda        # minutes on one GPU
    nice -n 10 /work/venv/bin/python benchmarks/label_noise_cifar10n_cnn.py --device cpu --subsample 5000 --epochs 8

For each noisy label set (``aggre_label``, ``worse_label`` of CIFAR-10N), a 9-layer CNN trained from
scratch on the 40,000 images of four folds (given noisy labels, random crop + flip) predicts the fifth,
so every row's probabilities come from a model that never saw it. No pretrained weights: nothing is
downloaded. Writes ``cifar10n_cnn_<labels>.npy`` (N x 10 float32) for ``label_noise_cifar10n.py``.
"""

from __future__ import annotations

import argparse
import csv
import io
import time
import zipfile
from pathlib import Path

import numpy as np


def load_images(zip_path: Path, index_csv: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    from PIL import Image

    rows = list(csv.DictReader(open(index_csv)))
    with zipfile.ZipFile(zip_path) as z:
        x = np.stack([np.asarray(Image.open(io.BytesIO(z.read(r["path"]))).convert("RGB")) for r in rows])
    labels = {k: np.array([int(r[k]) for r in rows]) for k in ("clean_label", "aggre_label", "worse_label")}
    return x, labels


def make_net(nn):
    def block(ci, co):
        return [nn.Conv2d(ci, co, 3, padding=1, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True)]

    return nn.Sequential(*block(3, 64), *block(64, 128), nn.MaxPool2d(2), *block(128, 128), *block(128, 256),
                         nn.MaxPool2d(2), *block(256, 256), *block(256, 512), nn.MaxPool2d(2),
                         nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(512, 10))


def train_predict(x_train, y_train, x_test, *, epochs: int, device: str, seed: int, batch: int = 512):
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    mean = torch.tensor([0.491, 0.482, 0.447], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.247, 0.243, 0.262], device=device).view(1, 3, 1, 1)

    def prep(a):
        t = torch.from_numpy(a).to(device).permute(0, 3, 1, 2).float().div_(255)
        return ((t - mean) / std).contiguous(memory_format=torch.channels_last)

    xt, xv = prep(x_train), prep(x_test)
    yt = torch.from_numpy(y_train).to(device)
    net = make_net(nn).to(device).to(memory_format=torch.channels_last)
    steps = epochs * ((len(xt) + batch - 1) // batch)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps, pct_start=0.25)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    amp = device.startswith("cuda")
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(xt), device=device)
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            xb = xt[idx]
            # random crop (pad 4, reflect) and horizontal flip
            xb = nn.functional.pad(xb, (4, 4, 4, 4), mode="reflect")
            dx, dy = np.random.randint(0, 9, 2)
            xb = xb[:, :, dy:dy + 32, dx:dx + 32]
            flip = torch.rand(len(xb), device=device) < 0.5
            xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(3), xb)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
                loss = loss_fn(net(xb), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    out = []
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
        for i in range(0, len(xv), 1024):
            xb = xv[i:i + 1024]
            logits = (net(xb).float() + net(xb.flip(3)).float()) / 2
            out.append(torch.softmax(logits, 1).cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--subsample", type=int, default=0, help="use the first N images only")
    ap.add_argument("--labels", default="aggre_label,worse_label")
    ap.add_argument("--data", help="folder with train.zip and train_index.csv (default ../shared/data/cifar10-jpg)")
    ap.add_argument("--out", help="output folder (default benchmarks/.cache)")
    args = ap.parse_args()
    from sklearn.model_selection import StratifiedKFold

    if args.data is None:
        from label_noise_common import shared_data

        args.data = shared_data() / "cifar10-jpg"
    if args.out is None:
        from label_noise_common import cache_dir

        args.out = cache_dir()
    data, out = Path(args.data), Path(args.out)
    t0 = time.perf_counter()
    x, labels = load_images(data / "train.zip", data / "train_index.csv")
    if args.subsample:
        x = x[:args.subsample]
        labels = {k: v[:args.subsample] for k, v in labels.items()}
    print(f"{len(x)} images decoded in {time.perf_counter() - t0:.1f}s; device {args.device}")
    for name in args.labels.split(","):
        y = labels[name]
        probs = np.zeros((len(y), 10), np.float32)
        t0 = time.perf_counter()
        for f, (tr, te) in enumerate(StratifiedKFold(args.folds, shuffle=True, random_state=0).split(x, y)):
            probs[te] = train_predict(x[tr], y[tr], x[te], epochs=args.epochs, device=args.device, seed=f)
        acc_given = float((probs.argmax(1) == y).mean())
        acc_clean = float((probs.argmax(1) == labels["clean_label"]).mean())
        np.save(out / f"cifar10n_cnn_{name}{'_sub' + str(args.subsample) if args.subsample else ''}.npy", probs)
        print(f"{name}: {args.folds}-fold CNN, {args.epochs} epochs: out-of-sample accuracy vs given {acc_given:.4f}, "
              f"vs clean {acc_clean:.4f}; {time.perf_counter() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
