"""Finished trainings, kept by content so an interrupted eval resumes and a repeated one is free.

One file per training: ``<model cache>/eval/<key>.npz`` (the pipeline's ``cache:`` folder, else
``RUN/cache``) holding the test-set predictions and the training seconds. The key is a hash of
everything that decides the predictions:

* the model's name, code version (:attr:`~curate.eval.models.EvalModel.version`) and training settings
  (not ``threads``: it changes speed, not the result), with the training budget: a torch model's
  ``samples`` (``--budget samples``) is part of the key whenever it differs from ``epochs`` x the arm's
  items, i.e. whenever the training differs from an ``--budget epochs`` one (the raw arm's training is the
  same under both budgets, and so is its key);
* the prepared training inputs of all rows (features as the model sees them), the arm's rows and labels
  and the number of classes;
* the prepared test inputs and the seed.

So the key does not depend on the run: two runs over the same items (a changed later stage, the same data
set with another pipeline) share their raw and ceiling trainings; what changed (a stage's removals, the
features, the model) trains again. Scores are recomputed from the stored predictions, so a changed
leakage check needs no retraining. ``--retrain`` ignores the stored trainings (and replaces them).

A training in progress keeps a :class:`Checkpoint` under ``<model cache>/eval/ckpt/<key>.pt`` (a torch
model's weights, optimiser, schedule and random-number state after an epoch, written at most once every
30 s), so an eval that is stopped (Ctrl-C, a time limit) resumes its long trainings from their last
saved epoch instead of from scratch; the resumed training gives the same predictions. The file is removed
when the training's predictions are stored. With ``--curve`` the stored training also holds the test
predictions after every epoch (``curve``).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curate import storage

log = logging.getLogger(__name__)

FORMAT = 1


def digest(x: Any) -> str:
    """A content hash of model inputs: a numpy array (dtype, shape, bytes), a scipy sparse matrix (its
    parts) or an object array of texts."""
    h = hashlib.blake2b(digest_size=16)
    if hasattr(x, "tocsr") and not isinstance(x, np.ndarray):  # scipy sparse
        x = x.tocsr()
        h.update(f"csr|{x.shape}|{x.dtype}".encode())
        for part in (x.data, x.indices, x.indptr):
            h.update(np.ascontiguousarray(part).tobytes())
        return h.hexdigest()
    x = np.asarray(x)
    h.update(f"{x.dtype}|{x.shape}".encode())
    if x.dtype == object:
        for v in x.ravel().tolist():
            h.update(b"\x00" if v is None else b"\x01" + str(v).encode("utf-8", "surrogatepass"))
    else:
        h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


def training_key(model_info: dict[str, Any], train_digest: str, rows: np.ndarray, y: np.ndarray, n_classes: int,
                 test_digest: str, seed: int) -> str:
    """The key of one training (see the module docstring)."""
    settings = {k: v for k, v in model_info.items() if k != "threads"}
    if settings.get("samples") in (None, int(settings.get("epochs") or 0) * len(rows)):
        settings.pop("samples", None)  # the same training as epochs x items: the same key as before budgets existed
    h = hashlib.blake2b(digest_size=20)
    h.update(json.dumps({"format": FORMAT, "model": settings, "train": train_digest, "test": test_digest,
                         "classes": int(n_classes), "seed": int(seed)}, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
    h.update(b"|")
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return h.hexdigest()


class TrainingCache:
    """Stored predictions of finished trainings under ``root`` (a local or remote folder); ``root`` None
    stores nothing."""

    def __init__(self, root, *, read: bool = True):
        self.root = storage.location(root) if root is not None else None
        self.read = read

    def _path(self, key: str):
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str) -> tuple[np.ndarray, float, np.ndarray | None] | None:
        """(test predictions, training seconds, per-epoch test predictions or None), or None when this
        training is not stored."""
        if self.root is None or not self.read:
            return None
        p = self._path(key)
        if not p.exists():
            return None
        try:
            with np.load(io.BytesIO(p.read_bytes())) as z:
                curve = z["curve"].astype(np.int64) if "curve" in z.files else None
                return z["pred"].astype(np.int64), float(z["seconds"]), curve
        except Exception as e:  # a damaged file is a cache miss, never an error
            log.warning("eval cache: unreadable %s (%s); training again", p, e)
            return None

    def put(self, key: str, pred: np.ndarray, seconds: float, curve: np.ndarray | None = None) -> None:
        """Store a finished training (and remove its checkpoint)."""
        if self.root is None:
            return
        buf = io.BytesIO()
        extra = {"curve": np.asarray(curve, dtype=np.int16)} if curve is not None and len(curve) else {}
        np.savez_compressed(buf, pred=np.asarray(pred, dtype=np.int64), seconds=np.float64(seconds), **extra)
        try:
            storage.write_bytes(self._path(key), buf.getvalue())
        except OSError as e:
            log.warning("eval cache: could not write %s (%s)", self._path(key), e)
            return
        ckpt = self.checkpoint(key)
        if ckpt is not None:
            ckpt.remove()

    def checkpoint(self, key: str) -> Checkpoint | None:
        """Where the training ``key`` keeps its state while it runs (None: no model cache). With
        ``--retrain`` (``read`` false) an earlier checkpoint is not resumed from."""
        if self.root is None:
            return None
        return Checkpoint(str(self.root / "ckpt" / key[:2] / f"{key}.pt"), resume=self.read)


@dataclass
class Checkpoint:
    """A torch training's state between epochs (a plain, picklable description: workers get it in their
    task). ``every``: seconds between saves."""

    path: str
    resume: bool = True
    every: float = 30.0

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None (none saved, not resuming, or unreadable: the training starts over)."""
        p = storage.location(self.path)
        if not self.resume or not p.exists():
            return None
        import torch

        try:
            return torch.load(io.BytesIO(p.read_bytes()), map_location="cpu", weights_only=False)
        except Exception as e:  # a damaged checkpoint only costs the epochs it held
            log.warning("eval: unreadable checkpoint %s (%s); training from the start", p, e)
            return None

    def save(self, state: dict[str, Any]) -> None:
        import torch

        buf = io.BytesIO()
        torch.save(state, buf)
        try:
            storage.write_bytes(storage.location(self.path), buf.getvalue())
        except OSError as e:
            log.warning("eval: could not write checkpoint %s (%s)", self.path, e)

    def remove(self) -> None:
        p = storage.location(self.path)
        try:
            if not p.exists():  # a training shorter than ``every`` never saved one
                return
            p.unlink()
            if isinstance(p, Path) and not any(p.parent.iterdir()):
                p.parent.rmdir()
        except OSError as e:
            log.warning("eval: could not remove checkpoint %s (%s)", p, e)

    def __str__(self) -> str:
        return self.path
