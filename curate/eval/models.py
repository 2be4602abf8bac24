"""The small models ``curate eval`` trains, sized for a CPU: one class per ``--model``.

=========  ==========  ==========================================================================
model      features    what it is
=========  ==========  ==========================================================================
linear     vectors     linear probe: one linear layer (softmax regression) on standardised vectors
mlp        vectors     one hidden layer (512, ReLU, dropout 0.2) on standardised vectors
cnn        pixels      small CNN from scratch (3 conv blocks of width 32-64-128, batch norm, max pool), flips and
                       shifted crops as augmentation
tfidf      text        logistic regression (scikit-learn) on TF-IDF of word 1-2 grams
=========  ==========  ==========================================================================

The torch models train with AdamW and a cosine learning-rate schedule; ``seed`` fixes the weights'
initialisation and the batch order, so seeds give the spread of the training itself. Every model takes
integer class indices and predicts integer class indices.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from curate.errors import CurateError, require

log = logging.getLogger(__name__)

Progress = Callable[[int], None]  # called with the number of finished epochs (or fits) since the last call


@dataclass
class ModelConfig:
    """Training settings (defaults per model in :data:`DEFAULTS`)."""

    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden: int = 512
    width: int = 32  # cnn: channels of the first block (the others: 2x, 4x)
    threads: int | None = None  # torch threads while training (None: torch's default)


DEFAULTS: dict[str, dict[str, Any]] = {
    # one thread: these are tiny matrix products, which several threads only slow down (x30 on 2 busy cores)
    "linear": {"epochs": 30, "batch_size": 512, "lr": 1e-2, "weight_decay": 1e-4, "threads": 1},
    "mlp": {"epochs": 30, "batch_size": 512, "lr": 1e-3, "weight_decay": 1e-4, "hidden": 512, "threads": 1},
    "cnn": {"epochs": 10, "batch_size": 128, "lr": 2e-3, "weight_decay": 5e-4},
    "tfidf": {"epochs": 1},
}


class EvalModel:
    """Base: ``fit(x, y, n_classes, seed)`` then ``predict(x)``."""

    name: ClassVar[str]
    features: ClassVar[str]  # "vectors" | "pixels" | "text"

    def __init__(self, config: ModelConfig):
        self.config = config

    def units(self) -> int:
        """Progress-bar units per fit (epochs for the torch models)."""
        return self.config.epochs

    def prepare(self, train_x, test_x) -> tuple[Any, Any]:
        """Turn raw features of all training items and the test items into model inputs, once per eval
        (e.g. standardisation fitted on all training items: unsupervised, the same for every arm)."""
        return train_x, test_x

    def fit(self, x, y: np.ndarray, n_classes: int, seed: int, progress: Progress | None = None) -> None:
        raise NotImplementedError

    def predict(self, x) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "features": self.features, **self.config.__dict__}


# -- torch models ---------------------------------------------------------------------------------
def _torch():
    return require("torch", "eval", "eval's linear, mlp and cnn models")


class _TorchModel(EvalModel):
    augment: ClassVar[bool] = False
    MIN_STEPS: ClassVar[int] = 10

    def build(self, in_shape: tuple[int, ...], n_classes: int):
        raise NotImplementedError

    def _tensor(self, x):
        torch = _torch()
        return torch.from_numpy(np.ascontiguousarray(x))

    def _input(self, xb):
        return xb

    def fit(self, x, y, n_classes, seed, progress=None):
        torch = _torch()
        before = torch.get_num_threads()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        try:
            self._fit(x, y, n_classes, seed, progress)
        finally:
            torch.set_num_threads(before)

    def _fit(self, x, y, n_classes, seed, progress):
        torch = _torch()
        cfg = self.config
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        self.net = self.build(tuple(x.shape[1:]), n_classes)
        xs = self._tensor(x)
        ys = torch.from_numpy(np.asarray(y, dtype=np.int64))
        n = len(ys)
        # small sets get smaller batches: at least MIN_STEPS optimiser steps per epoch
        bs = max(8, min(cfg.batch_size, -(-n // self.MIN_STEPS)))
        steps = max(1, cfg.epochs * (-(-n // bs)))
        opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.15)
        loss_fn = torch.nn.CrossEntropyLoss()
        self.net.train()
        for _ in range(cfg.epochs):
            order = torch.randperm(n, generator=gen)
            for s in range(0, n, bs):
                idx = order[s:s + bs]
                xb = self._input(xs[idx])
                if self.augment:
                    xb = self._augment(xb, gen)
                loss = loss_fn(self.net(xb), ys[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            if progress:
                progress(1)
        self.net.eval()

    def predict(self, x):
        torch = _torch()
        xs = self._tensor(x)
        out = []
        before = torch.get_num_threads()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        with torch.no_grad():
            for s in range(0, len(xs), 1024):
                out.append(self.net(self._input(xs[s:s + 1024])).argmax(1))
        torch.set_num_threads(before)
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def _standardise(train_x: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = train_x.mean(axis=0)
    std = train_x.std(axis=0)
    std[std < 1e-6] = 1.0
    return ((train_x - mean) / std).astype(np.float32), ((test_x - mean) / std).astype(np.float32)


class LinearProbe(_TorchModel):
    name = "linear"
    features = "vectors"

    def prepare(self, train_x, test_x):
        return _standardise(train_x, test_x)

    def build(self, in_shape, n_classes):
        return _torch().nn.Linear(in_shape[0], n_classes)


class MLP(_TorchModel):
    name = "mlp"
    features = "vectors"

    def prepare(self, train_x, test_x):
        return _standardise(train_x, test_x)

    def build(self, in_shape, n_classes):
        nn = _torch().nn
        return nn.Sequential(nn.Linear(in_shape[0], self.config.hidden), nn.ReLU(), nn.Dropout(0.2),
                             nn.Linear(self.config.hidden, n_classes))


class SmallCNN(_TorchModel):
    """Three conv blocks (``width``, 2x, 4x channels; conv-BN-ReLU, max pool), global average pool, linear.

    About 10 M multiply-adds per 32x32 image at width 32 (forward)."""

    name = "cnn"
    features = "pixels"
    augment = True

    def build(self, in_shape, n_classes):
        nn = _torch().nn

        def block(i, o):
            return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True), nn.MaxPool2d(2)]

        w = self.config.width
        return nn.Sequential(*block(3, w), *block(w, 2 * w), *block(2 * w, 4 * w), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(4 * w, n_classes))

    def _input(self, xb):
        # uint8 NHWC -> float NCHW in [-1, 1]
        return xb.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)

    def _augment(self, xb, gen):
        torch = _torch()
        flip = torch.rand(len(xb), generator=gen) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        pad = max(1, xb.shape[-1] // 8)  # shifted crops: pad and crop back at one random offset per batch
        dx, dy = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,), generator=gen))
        padded = torch.nn.functional.pad(xb, (pad, pad, pad, pad), mode="reflect")
        return padded[:, :, dy:dy + xb.shape[2], dx:dx + xb.shape[3]]


# -- scikit-learn ---------------------------------------------------------------------------------
class TfidfLogistic(EvalModel):
    """TF-IDF (word 1-2 grams, sublinear tf, vocabulary from all raw training texts) + logistic regression."""

    name = "tfidf"
    features = "text"

    def units(self) -> int:
        return 1

    def prepare(self, train_x, test_x):
        text = require("sklearn.feature_extraction.text", "eval", "eval's tfidf model")
        vec = text.TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_df=0.9, sublinear_tf=True, max_features=200_000,
                                   dtype=np.float32)
        fill = lambda xs: [t or "" for t in xs]  # noqa: E731
        train = vec.fit_transform(fill(train_x))
        return train.tocsr(), vec.transform(fill(test_x)).tocsr()

    def fit(self, x, y, n_classes, seed, progress=None):
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"):
            self.clf = LogisticRegression(C=4.0, max_iter=1000, random_state=seed).fit(x, y)
        if progress:
            progress(1)

    def predict(self, x):
        return self.clf.predict(x)


MODELS: dict[str, type[EvalModel]] = {m.name: m for m in (LinearProbe, MLP, SmallCNN, TfidfLogistic)}


def make_model(name: str, **overrides) -> EvalModel:
    """A model by ``--model`` name, with :data:`DEFAULTS` and the given overrides (``None`` values ignored)."""
    if name not in MODELS:
        raise CurateError(f"--model: unknown model {name!r}; allowed: {', '.join(MODELS)}")
    params = {**DEFAULTS.get(name, {}), **{k: v for k, v in overrides.items() if v is not None}}
    return MODELS[name](ModelConfig(**params))


def accuracy(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float | None:
    """Share of correct predictions (over ``mask`` rows); None when no row is scored."""
    if mask is not None:
        pred, truth = pred[mask], truth[mask]
    return float((pred == truth).mean()) if len(truth) else None


def timed_fit(model: EvalModel, x, y, n_classes: int, seed: int, progress: Progress | None = None) -> float:
    t0 = time.perf_counter()
    model.fit(x, y, n_classes, seed, progress)
    return time.perf_counter() - t0
