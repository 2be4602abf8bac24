"""Trainings of one eval in parallel processes (``--jobs N``), for models that train on one core each.

The model inputs (prepared training and test features) are written once to a temporary folder (numpy
arrays as ``.npy``, memory-mapped by the workers; anything else, e.g. a sparse TF-IDF matrix, pickled);
each task names its rows, labels and seed and gets back the test predictions and its training seconds.
Workers are spawned (not forked: the parent may hold torch's thread pool), each with ``threads`` torch
threads. The folder is named by the eval's process id (``curate-eval-<pid>-*``) and removed when the
trainings end; one left behind by an eval that was killed (``kill -9``, a lost machine) is removed by the
next ``--jobs`` eval on the machine, once its process is gone.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

log = logging.getLogger(__name__)

PREFIX = "curate-eval-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: alive
        return True
    return True


def remove_stale(tmp_root: str | None = None) -> list[Path]:
    """Remove the input folders of ``--jobs`` evals whose process is gone (killed before its clean-up ran);
    returns what was removed."""
    removed = []
    for p in Path(tmp_root or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        pid = p.name[len(PREFIX):].split("-", 1)[0]
        if not p.is_dir() or not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        shutil.rmtree(p, ignore_errors=True)
        if not p.exists():
            removed.append(p)
            log.info("removed %s, left behind by an eval that was stopped", p)
    return removed


@dataclass
class Task:
    """One training: the model by name and settings, the rows of the prepared inputs and their labels."""

    tag: Any
    model: str
    settings: dict[str, Any]
    rows: np.ndarray
    y: np.ndarray
    n_classes: int
    seed: int
    checkpoint: Any = None  # a curate.eval.trained.Checkpoint, or None
    curve: bool = False


def _save(obj, path: Path) -> str:
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        np.save(path.with_suffix(".npy"), obj)
        return str(path.with_suffix(".npy"))
    with open(path.with_suffix(".pkl"), "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    return str(path.with_suffix(".pkl"))


def _load(path: str):
    if path.endswith(".npy"):
        return np.load(path, mmap_mode="r")
    with open(path, "rb") as f:
        return pickle.load(f)


_INPUTS: dict[str, Any] = {}


def _init(paths: dict[str, str], threads: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    for k, p in paths.items():
        _INPUTS[k] = _load(p)


def fit_predict(model, train_x, test_x, test_ok: np.ndarray, rows: np.ndarray, y: np.ndarray, n_classes: int,
                seed: int, progress=None, *, checkpoint=None, curve: bool = False
                ) -> tuple[np.ndarray, float, np.ndarray | None]:
    """Train ``model`` on ``train_x[rows]`` with labels ``y``: predictions for every test item (-2 where
    ``test_ok`` is false), the training seconds, and with ``curve`` the same predictions after every epoch
    (epochs x test items; else None)."""
    from curate.eval.models import timed_fit

    x = train_x[rows]
    if isinstance(x, np.memmap):
        x = np.asarray(x)
    ok_x = (np.asarray(test_x[test_ok]) if isinstance(test_x, np.ndarray) else test_x[test_ok]) if test_ok.any() else None

    def predict() -> np.ndarray:
        pred = np.full(len(test_ok), -2, dtype=np.int64)
        if ok_x is not None:
            pred[test_ok] = model.predict(ok_x)
        return pred

    secs = timed_fit(model, x, y, n_classes, seed, progress=progress, checkpoint=checkpoint,
                     probe=predict if curve else None)
    return predict(), secs, (np.stack(model.curve) if curve and model.curve else None)


def _work(task: Task) -> tuple[Any, np.ndarray, float, np.ndarray | None]:
    from curate.eval.models import make_model

    model = make_model(task.model, **task.settings)
    pred, secs, curve = fit_predict(model, _INPUTS["train"], _INPUTS["test"], np.asarray(_INPUTS["test_ok"]), task.rows,
                                    task.y, task.n_classes, task.seed, checkpoint=task.checkpoint, curve=task.curve)
    return task.tag, pred, secs, curve


def run_parallel(tasks: list[Task], train_x, test_x, test_ok: np.ndarray, *, jobs: int, threads: int,
                 done: Callable[[Task], None] | None = None
                 ) -> Iterator[tuple[Any, np.ndarray, float, np.ndarray | None]]:
    """Yield ``(tag, predictions, seconds, curve)`` per task as they finish, ``jobs`` at a time."""
    remove_stale()
    tmp = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    try:
        paths = {"train": _save(train_x, tmp / "train"), "test": _save(test_x, tmp / "test"),
                 "test_ok": _save(np.asarray(test_ok), tmp / "test_ok")}
        by_tag = {t.tag: t for t in tasks}
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=_init,
                                 initargs=(paths, threads)) as pool:
            futures = [pool.submit(_work, t) for t in tasks]
            for fut in as_completed(futures):
                tag, pred, secs, curve = fut.result()
                if done is not None:
                    done(by_tag[tag])
                yield tag, pred, secs, curve
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
