"""The small models ``curate eval`` trains, sized for a CPU: one class per ``--model``.

=========  ==========  ==========================================================================
model      features    what it is
=========  ==========  ==========================================================================
linear     vectors     linear probe: one linear layer (softmax regression) on standardised vectors
mlp        vectors     one hidden layer (512, ReLU, dropout 0.2) on standardised vectors
cnn        pixels      narrow ResNet-9 from scratch (widths 8-16-32-64, batch norm), random crops and flips
tfidf      text        logistic regression (scikit-learn) on TF-IDF of word 1-2 grams
=========  ==========  ==========================================================================

The torch models train with AdamW and a one-cycle learning-rate schedule; ``seed`` fixes the weights'
initialisation and the batch order, so seeds give the spread of the training itself. How long they train
is a budget (:class:`Schedule`): ``epochs`` passes over the training set, or with ``samples`` set, exactly
that many training samples (``curate eval --budget samples``: every arm sees as many samples as the raw arm,
a smaller arm runs more passes, the last one possibly partial). Given a
:class:`~curate.eval.trained.Checkpoint` they save their state between epochs and resume from it (the same
result as an uninterrupted training); given a probe, they record its test predictions after every epoch
(:attr:`EvalModel.curve`, for ``--curve``). Every model takes integer class indices and predicts integer
class indices.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import numpy as np

from curate.errors import CurateError, require

if TYPE_CHECKING:
    from curate.eval.trained import Checkpoint

log = logging.getLogger(__name__)

Progress = Callable[[int], None]  # called with the number of finished epochs (or fits) since the last call
Probe = Callable[[], np.ndarray]  # test-set predictions of the model as it is now (for the per-epoch curve)


@dataclass
class ModelConfig:
    """Training settings (defaults per model in :data:`DEFAULTS`)."""

    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden: int = 512
    width: int = 8  # cnn: channels of the first conv (the others: 2x, 4x, 8x)
    threads: int | None = None  # torch threads while training (None: torch's default)
    samples: int | None = None  # torch models: training samples to see in all (None: epochs x the training items)


@dataclass(frozen=True)
class Schedule:
    """How a torch training of ``items`` items runs: ``passes`` passes over the shuffled items (the last one
    may stop after ``last`` items), ``steps`` optimiser steps of at most ``batch_size`` items, ``samples``
    training samples seen in all (``epochs`` = samples / items, fractional when the last pass is partial)."""

    items: int
    batch_size: int
    samples: int
    passes: int
    last: int
    steps: int

    @property
    def epochs(self) -> float:
        return self.samples / self.items if self.items else 0.0

    def pass_items(self, p: int) -> int:
        """Items in pass ``p`` (0-based)."""
        return self.last if p == self.passes - 1 else self.items

    def describe(self) -> dict[str, Any]:
        return {"epochs": round(self.epochs, 4), "passes": self.passes, "steps": self.steps, "samples": self.samples,
                "batch_size": self.batch_size}


def schedule(items: int, config: ModelConfig, min_steps: int = 10) -> Schedule:
    """The :class:`Schedule` of a training of ``items`` items under ``config`` (``samples`` None: ``epochs``
    whole passes). Small sets get smaller batches: at least ``min_steps`` optimiser steps per pass."""
    n = max(1, int(items))
    bs = max(8, min(config.batch_size, -(-n // min_steps)))
    total = int(config.samples) if config.samples else config.epochs * n
    total = max(1, total)
    passes = -(-total // n)
    last = total - (passes - 1) * n
    steps = (passes - 1) * (-(-n // bs)) + (-(-last // bs))
    return Schedule(items=n, batch_size=bs, samples=total, passes=passes, last=last, steps=steps)


DEFAULTS: dict[str, dict[str, Any]] = {
    # one thread: these are tiny matrix products, which several threads only slow down (x30 on 2 busy cores)
    "linear": {"epochs": 30, "batch_size": 512, "lr": 1e-2, "weight_decay": 1e-4, "threads": 1},
    "mlp": {"epochs": 30, "batch_size": 512, "lr": 1e-3, "weight_decay": 1e-4, "hidden": 512, "threads": 1},
    "cnn": {"epochs": 10, "batch_size": 256, "lr": 2e-3, "weight_decay": 5e-4, "width": 8},
    "tfidf": {"epochs": 1},
}


class EvalModel:
    """Base: ``fit(x, y, n_classes, seed)`` then ``predict(x)``."""

    name: ClassVar[str]
    features: ClassVar[str]  # "vectors" | "pixels" | "text"
    version: ClassVar[int] = 1  # bump when a change of the code changes what a training predicts (cache key)

    def __init__(self, config: ModelConfig):
        self.config = config
        self.curve: list[np.ndarray] = []  # the probe's predictions after each epoch of the last fit
        self.prior_seconds = 0.0  # training seconds spent before the checkpoint the last fit resumed from

    def units(self, items: int) -> int:
        """Progress-bar units of a fit on ``items`` items (passes for the torch models)."""
        return schedule(items, self.config).passes

    def schedule(self, items: int) -> Schedule | None:
        """How a fit on ``items`` items trains (None: the model trains to convergence, no budget)."""
        return schedule(items, self.config)

    def prepare(self, train_x, test_x) -> tuple[Any, Any]:
        """Turn raw features of all training items and the test items into model inputs, once per eval
        (e.g. standardisation fitted on all training items: unsupervised, the same for every arm)."""
        return train_x, test_x

    def fit(self, x, y: np.ndarray, n_classes: int, seed: int, progress: Progress | None = None, *,
            checkpoint: Checkpoint | None = None, probe: Probe | None = None) -> None:
        """Train on ``x``/``y``. ``checkpoint``: where a torch model keeps its state between epochs, so that an
        interrupted training resumes from its last saved epoch (the result is the same as uninterrupted);
        ``probe``: called after every epoch (net in eval mode), its test predictions are kept in
        :attr:`curve` (it changes nothing in the training)."""
        raise NotImplementedError

    def predict(self, x) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "features": self.features, "version": self.version, **self.config.__dict__}


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

    def fit(self, x, y, n_classes, seed, progress=None, *, checkpoint=None, probe=None):
        torch = _torch()
        before = torch.get_num_threads()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        try:
            self._fit(x, y, n_classes, seed, progress, checkpoint, probe)
        finally:
            torch.set_num_threads(before)

    def _fit(self, x, y, n_classes, seed, progress, checkpoint: Checkpoint | None, probe: Probe | None):
        torch = _torch()
        cfg = self.config
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        self.net = self.build(tuple(x.shape[1:]), n_classes)
        xs = self._tensor(x)
        ys = torch.from_numpy(np.asarray(y, dtype=np.int64))
        n = len(ys)
        plan = schedule(n, cfg, self.MIN_STEPS)
        bs, steps = plan.batch_size, plan.steps
        opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps, pct_start=0.15)
        loss_fn = torch.nn.CrossEntropyLoss()
        self.curve, self.prior_seconds = [], 0.0
        start, t0 = 0, time.perf_counter()
        state = checkpoint.load() if checkpoint is not None else None
        if state is not None and state.get("epochs") == cfg.epochs and state.get("items") == n \
                and state.get("samples", cfg.epochs * n) == plan.samples \
                and (probe is None or len(state["curve"]) == state["epoch"]):
            self.net.load_state_dict(state["net"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            gen.set_state(state["gen"])
            torch.set_rng_state(state["rng"])
            start, self.curve = int(state["epoch"]), [np.asarray(c) for c in state["curve"]] if probe else []
            self.prior_seconds = float(state.get("seconds", 0.0))
            log.info("resuming a training at pass %d of %d from %s", start, plan.passes, checkpoint)
            if progress and start:
                progress(start)
        saved = time.monotonic()
        for epoch in range(start, plan.passes):
            self.net.train()
            order = torch.randperm(n, generator=gen)[:plan.pass_items(epoch)]  # the last pass may be partial
            for s in range(0, len(order), bs):
                idx = order[s:s + bs]
                xb = xs[idx]
                if self.augment:
                    xb = self._augment(xb, gen)
                loss = loss_fn(self.net(self._input(xb)), ys[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            if probe is not None:
                self.net.eval()
                self.curve.append(np.asarray(probe()))
            if checkpoint is not None and epoch + 1 < plan.passes and time.monotonic() - saved >= checkpoint.every:
                checkpoint.save({"epoch": epoch + 1, "epochs": cfg.epochs, "items": n, "samples": plan.samples,
                                 "net": self.net.state_dict(),
                                 "opt": opt.state_dict(), "sched": sched.state_dict(), "gen": gen.get_state(),
                                 "rng": torch.get_rng_state(), "curve": self.curve,
                                 "seconds": self.prior_seconds + time.perf_counter() - t0})
                saved = time.monotonic()
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
    """A narrow ResNet-9 (the DAWNBench CIFAR-10 shape) for small images, trained from scratch:

    conv ``w`` -> conv ``2w``, max pool, residual block -> conv ``4w``, max pool -> conv ``8w``, max pool,
    residual block -> global max pool -> linear (every conv 3x3 + batch norm + ReLU; ``w`` = ``width``, 8 by
    default: 104 k weights, about 6 M multiply-adds per 32x32 image forward). Channels-last tensors;
    images stay uint8 in memory and are scaled per batch; augmentation: a random crop of the image padded
    by 1/8 of its side and a horizontal flip, per image.

    On the 2-core development VM one thread trained 840-1,070 images/s at width 8, two threads 180-190/s
    (both cores busy with the other thread's spinning); two processes of one thread each, 2,000/s together,
    which is what ``--jobs 2 --threads 1`` does."""

    name = "cnn"
    features = "pixels"
    augment = True
    version = 2  # 1: three plain conv blocks, one crop offset per batch

    def build(self, in_shape, n_classes):
        torch = _torch()
        nn = torch.nn

        def cbr(i, o):
            return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

        class Residual(nn.Module):
            def __init__(self, c):
                super().__init__()
                self.body = nn.Sequential(*cbr(c, c), *cbr(c, c))

            def forward(self, x):
                return x + self.body(x)

        w = self.config.width
        net = nn.Sequential(*cbr(3, w), *cbr(w, 2 * w), nn.MaxPool2d(2), Residual(2 * w),
                            *cbr(2 * w, 4 * w), nn.MaxPool2d(2),
                            *cbr(4 * w, 8 * w), nn.MaxPool2d(2), Residual(8 * w),
                            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(8 * w, n_classes))
        return net.to(memory_format=torch.channels_last)

    def _input(self, xb):
        # uint8 NHWC -> float NCHW in [-1, 1]; permuting NHWC gives channels-last strides, which .float() keeps
        return xb.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)

    def _augment(self, xb, gen):
        """Per image: a random crop of the zero-padded image (pad 1/8 of the side) and a random flip (uint8 NHWC)."""
        torch = _torch()
        n, h, w, _ = xb.shape
        pad = max(1, h // 8)
        padded = torch.zeros((n, h + 2 * pad, w + 2 * pad, xb.shape[3]), dtype=xb.dtype)
        padded[:, pad:pad + h, pad:pad + w] = xb
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        cols = dx[:, None] + torch.arange(w)
        flip = torch.rand(n, generator=gen) < 0.5
        cols = torch.where(flip[:, None], cols.flip(1), cols)
        rows = dy[:, None] + torch.arange(h)
        return padded[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


# -- scikit-learn ---------------------------------------------------------------------------------
class TfidfLogistic(EvalModel):
    """TF-IDF (word 1-2 grams, sublinear tf, vocabulary from all raw training texts) + logistic regression."""

    name = "tfidf"
    features = "text"

    def units(self, items: int) -> int:
        return 1

    def schedule(self, items: int) -> None:
        return None  # scikit-learn's solver runs to convergence: no epochs, no budget

    def prepare(self, train_x, test_x):
        text = require("sklearn.feature_extraction.text", "eval", "eval's tfidf model")
        vec = text.TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_df=0.9, sublinear_tf=True, max_features=200_000,
                                   dtype=np.float32)
        fill = lambda xs: [t or "" for t in xs]  # noqa: E731
        try:
            train = vec.fit_transform(fill(train_x))
        except ValueError as e:  # sklearn: "empty vocabulary" / "After pruning, no terms remain"
            raise CurateError(
                "--model tfidf: no word or word pair of the training texts is in at least 2 items and at most 90% of "
                "them, so TF-IDF has nothing to learn from; train on vectors instead: --model linear with an embed "
                f"stage in the run or --features meta.<key> ({e})") from None
        return train.tocsr(), vec.transform(fill(test_x)).tocsr()

    def fit(self, x, y, n_classes, seed, progress=None, *, checkpoint=None, probe=None):
        from sklearn.linear_model import LogisticRegression
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"):
            self.clf = LogisticRegression(C=4.0, max_iter=1000, random_state=seed).fit(x, y)
        self.curve = [np.asarray(probe())] if probe is not None else []
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


def timed_fit(model: EvalModel, x, y, n_classes: int, seed: int, progress: Progress | None = None, *,
              checkpoint: Checkpoint | None = None, probe: Probe | None = None) -> float:
    if isinstance(model, _TorchModel):  # imports that cost seconds once are not the first arm's training time:
        _torch()
        import torch._dynamo  # noqa: F401  (torch's optimisers import it when the first one is made)
    t0 = time.perf_counter()
    model.fit(x, y, n_classes, seed, progress, checkpoint=checkpoint, probe=probe)
    return time.perf_counter() - t0 + model.prior_seconds  # a resumed training: with the time before its checkpoint
