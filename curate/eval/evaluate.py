"""``curate eval``: train the same small model on each arm, score every one on the same trusted test set.

Order of work: check the run (finished, labelled), pick the model and its features, read the test set
(or hold out a split), compute features for the training items (shard by shard: image bytes are never
all in memory) and the test items, run the leakage check, then for every arm and seed train and score,
and write ``RUN/eval/eval.json`` (shape in :mod:`curate.eval.results`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import curate
from curate.errors import CurateError
from curate.eval.arms import ARM_KINDS, Arm, build_arms, raw_rows
from curate.eval.features import Features, embedding_columns, pixel_matrix, resolve_vectors, test_vectors, train_vectors
from curate.eval.leakage import ImageKeys, LeakageCheck
from curate.eval.models import MODELS, accuracy, make_model
from curate.eval.results import FORMAT, add_deltas, arm_result, write_results
from curate.eval.testset import TestSet, holdout_test_set, read_test_set, test_input_config
from curate.eval.trained import TrainingCache, digest
from curate.rundir import RunDir

log = logging.getLogger(__name__)

NO_LABELS = ("{root}: no item has a label. eval trains a classifier on the labels and scores it on a labelled test "
             "set, so the run's input needs a label per item: class sub-folders for an image folder, or a label "
             "column in a manifest (input.columns: {{label: COLUMN}}); then rerun 'curate run'")


@dataclass
class EvalOptions:
    """Everything ``curate eval`` can be told (the CLI options)."""

    test: str | None = None
    test_format: str | None = None
    test_columns: dict[str, str] | None = None
    test_root: str | None = None
    test_split: float | None = None
    model: str = "auto"
    features: str | None = None
    seeds: int = 3
    pending: str = "drop"
    arms: tuple[str, ...] = ARM_KINDS
    clean_labels: str | None = None
    leakage: bool = True
    cosine: float = 0.95
    epochs: int | None = None
    budget: str | None = None  # "samples" | "epochs"; None: samples for the torch models (tfidf has no budget)
    batch_size: int | None = None
    lr: float | None = None
    width: int | None = None
    image_size: int = 32
    threads: int | None = None
    jobs: int = 1
    retrain: bool = False
    curve: bool = False  # also score the test set after every epoch
    quiet: bool = False


def _records_have(run: RunDir, column: str) -> bool:
    """Whether any record has a value in ``column`` (images are checked by their width: no bytes are read)."""
    column = "width" if column == "image" else column
    for p in run.data_shards():
        if pq.read_table(p, columns=[column]).column(column).null_count < pq.ParquetFile(p).metadata.num_rows:
            return True
    return False


def choose_model(run: RunDir, manifest, name: str, features: str | None = None) -> str:
    """``auto``: a linear probe on ``features`` (``--features``) or where an embedding column exists, else a
    CNN for images, else TF-IDF."""
    if name != "auto":
        if name not in MODELS:
            raise CurateError(f"--model: unknown model {name!r}; allowed: auto, {', '.join(MODELS)}")
        return name
    if features or embedding_columns(manifest):
        return "linear"
    if _records_have(run, "image"):
        return "cnn"
    if _records_have(run, "text"):
        return "tfidf"
    raise CurateError(f"{run.root}: the records have neither images nor text nor embeddings to train on")


def _clean_labels(run: RunDir, manifest, ref: str, meta: list[str | None] | None, n: int) -> list[str | None]:
    """Clean labels of the training items from ``meta.<key>``, a record column or ``stage.column``."""
    from curate.record import RECORD_COLUMNS
    from curate.shards import read_records, read_stage

    if ref.startswith("meta."):
        key = ref.split(".", 1)[1]
        out = []
        for m in meta or [None] * n:
            v = json.loads(m).get(key) if m else None
            out.append(None if v is None or v == "" else str(v))
        if all(v is None for v in out):
            raise CurateError(f"--clean-labels {ref}: no item has {key!r} in its meta")
        return out
    if ref in RECORD_COLUMNS:
        return [None if v is None else str(v) for v in read_records(run, [ref]).column(ref).to_pylist()]
    stage_ref, col = ref.split(".", 1) if "." in ref else (None, ref)
    for s in reversed(manifest.finished_stages()):
        if (stage_ref is None or stage_ref in (s.name, s.dir)) and col in s.outputs.names:
            return [None if v is None else str(v) for v in read_stage(run, s.dir, [col]).column(col).to_pylist()]
    raise CurateError(f"--clean-labels: {ref!r} is not meta.<key>, a record column or a stage column of this run")


class _TrainScan:
    """One pass over the run's data shards: what eval needs of every training item."""

    def __init__(self, run: RunDir, *, pixels: int | None, texts: bool, meta: bool, image_keys: LeakageCheck | None,
                 quiet: bool):
        from tqdm.auto import tqdm

        cols = ["id", "source", "label"] + (["image"] if pixels or image_keys else []) + (["text"] if texts else []) \
            + (["meta"] if meta else [])
        self.ids, self.sources, self.labels, self.texts, self.meta = [], [], [], [], []
        pix, ok, keys = [], [], []
        total = sum(pq.ParquetFile(p).metadata.num_rows for p in run.data_shards())
        with tqdm(total=total, desc="read training items", unit="item", file=sys.stderr, disable=quiet) as bar:
            for p in run.data_shards():
                t = pq.read_table(p, columns=cols)
                self.ids += t.column("id").to_pylist()
                self.sources += t.column("source").to_pylist()
                self.labels += t.column("label").to_pylist()
                if texts:
                    self.texts += t.column("text").to_pylist()
                if meta:
                    self.meta += t.column("meta").to_pylist()
                if pixels or image_keys:
                    images = t.column("image").to_pylist()
                    if pixels:
                        m, o = pixel_matrix(images, pixels, quiet=True)
                        pix.append(m)
                        ok.append(o)
                    if image_keys is not None:
                        keys.append(image_keys.image_keys(images))
                bar.update(t.num_rows)
        self.pixels = np.concatenate(pix) if pix else None
        self.pixels_ok = np.concatenate(ok) if ok else None
        self.image_keys = ImageKeys.concat(keys, image_keys.hash_bytes) if image_keys is not None else None

    def records(self, columns: list[str]) -> pa.Table:
        data = {"id": self.ids, "source": self.sources, "label": self.labels}
        if "text" in columns:
            data["text"] = self.texts
        if "meta" in columns:
            data["meta"] = self.meta
        return pa.table(data)


def evaluate(run_dir: str | Path, opts: EvalOptions) -> dict[str, Any]:
    """Run an eval; returns the result, written to ``RUN/eval/eval.json`` (the latest eval, what the report
    shows) and ``RUN/eval/eval-<model>.json`` (the latest of each model)."""
    t_start = time.perf_counter()
    run = RunDir(run_dir)
    manifest = run.require_finished("evaluate it")
    if opts.test is None and opts.test_split is None:
        raise CurateError("eval needs a test set with trusted labels: --test PATH (a folder, CSV, JSONL, Parquet, "
                          "a saved Hugging Face dataset, or a YAML input mapping) or --test-split FRACTION")
    if opts.test is not None and opts.test_split is not None:
        raise CurateError("--test and --test-split: give one of them")
    if opts.seeds < 1:
        raise CurateError(f"--seeds: expected at least 1, got {opts.seeds}")
    if opts.budget is not None and opts.budget not in BUDGETS:
        raise CurateError(f"--budget: unknown budget {opts.budget!r}; allowed: {', '.join(BUDGETS)} (samples: every arm "
                          "trains on as many samples as the raw arm; epochs: every arm the same number of passes)")
    if not _records_have(run, "label"):
        raise CurateError(NO_LABELS.format(root=run.root))

    model_name = choose_model(run, manifest, opts.model, opts.features)
    if opts.features and MODELS[model_name].features != "vectors":
        raise CurateError(f"--features {opts.features}: only the linear and mlp models train on vectors; --model "
                          f"{model_name} trains on {MODELS[model_name].features} (drop --features, or use --model linear)")
    if opts.width is not None and model_name != "cnn":
        raise CurateError(f"--width is the cnn's; --model {model_name} has no conv blocks")
    model = make_model(model_name, epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr, threads=opts.threads,
                       width=opts.width)
    has_images = _records_have(run, "image")
    has_texts = _records_have(run, "text")
    feats: Features
    if model.features == "vectors":
        feats = resolve_vectors(manifest, opts.features, prefer="image" if has_images else "text")
    elif model.features == "pixels":
        if not has_images:
            raise CurateError(f"--model {model_name} trains on pixels, but the run's items have no images")
        feats = Features("pixels", f"pixels {opts.image_size}x{opts.image_size}", size=opts.image_size)
    else:
        if not has_texts:
            raise CurateError(f"--model {model_name} trains on text, but the run's items have no text")
        feats = Features("text", "text")

    check = LeakageCheck(manifest, cosine=opts.cosine, quiet=opts.quiet) if opts.leakage else None
    need_meta = (feats.kind == "vectors" and feats.stage is None) or bool(opts.clean_labels and opts.clean_labels.startswith("meta."))
    scan = _TrainScan(run, pixels=opts.image_size if feats.kind == "pixels" else None,
                      texts=has_texts and (feats.kind == "text" or opts.leakage), meta=need_meta,
                      image_keys=check if (check is not None and has_images) else None, quiet=opts.quiet)
    n = len(scan.ids)

    # the test set
    if opts.test is not None:
        cfg = test_input_config(opts.test, fmt=opts.test_format, columns=opts.test_columns, root=opts.test_root,
                                run_input=manifest.config.get("input"))
        test = read_test_set(cfg, quiet=opts.quiet)
    else:
        cols = ["id", "source", "label"] + (["text"] if has_texts else []) + (["meta"] if need_meta else [])
        test = holdout_test_set(scan.records(cols), opts.test_split)
    holdout = test.holdout_rows
    if holdout is not None:
        _check_split(scan.labels, holdout, opts.test_split)

    # features of both sets
    train_x, test_x, train_ok, test_ok = _features(run, manifest, feats, scan, test, quiet=opts.quiet)

    # leakage
    leak = None
    if check is not None:
        test_keys = None
        if scan.image_keys is not None:
            if holdout is not None:
                test_keys = ImageKeys([scan.image_keys.digests[r] for r in holdout], scan.image_keys.packed[holdout],
                                      scan.image_keys.valid[holdout])
            elif "image" in test.records.column_names:
                test_keys = check.image_keys(test.records.column("image").to_pylist())
        train_rows = np.setdiff1d(np.arange(n), holdout) if holdout is not None else np.arange(n)
        tr_texts = [scan.texts[i] for i in train_rows] if scan.texts else None
        te_texts = test.records.column("text").to_pylist() if (scan.texts and "text" in test.records.column_names) else None
        tr_keys = scan.image_keys
        if tr_keys is not None and holdout is not None:
            tr_keys = ImageKeys([tr_keys.digests[r] for r in train_rows], tr_keys.packed[train_rows], tr_keys.valid[train_rows])
        leak = check.run([scan.sources[i] for i in train_rows], test.records.column("source").to_pylist(),
                         train_images=tr_keys, test_images=test_keys, train_texts=tr_texts, test_texts=te_texts,
                         train_vectors=train_x[train_rows] if feats.kind == "vectors" else None,
                         test_vectors=test_x if feats.kind == "vectors" else None)
    leaked = leak.leaked if leak is not None else None

    # arms
    clean = _clean_labels(run, manifest, opts.clean_labels, scan.meta, n) if opts.clean_labels else None
    arms, notes = build_arms(run, manifest, scan.labels, pending=opts.pending, kinds=tuple(opts.arms),
                             clean_labels=clean, exclude_rows=holdout)
    if not arms:  # e.g. --arms ceiling without --clean-labels: an empty eval.json would replace the last one
        raise CurateError(f"--arms {','.join(opts.arms)}: nothing to train ({'; '.join(notes) or 'no arm applies'})")
    if holdout is not None and clean is not None:
        notes.append("ceiling: with --test-split the held-out items are scored against their given labels")
    if opts.curve and model_name == "tfidf":
        notes.append(f"--curve: the {model_name} model trains in one step, so it has no learning curve")

    test_labels = test.labels
    classes = sorted({lab for a in arms for lab in (a.labels if a.labels is not None else (scan.labels[r] for r in a.rows))
                      if lab is not None})
    code = {c: i for i, c in enumerate(classes)}
    y_test = np.array([code.get(lab, -1) for lab in test_labels], dtype=np.int64)
    unknown = {lab: test_labels.count(lab) for lab in set(test_labels) if lab not in code}
    if unknown:
        notes.append(f"{sum(unknown.values()):,} test items have labels no training item has "
                     f"({', '.join(sorted(unknown)[:5])}{', ...' if len(unknown) > 5 else ''}); they count as wrong")
    if not test_ok.all():
        notes.append(f"{int((~test_ok).sum()):,} test items have no features (e.g. undecodable); they count as wrong")

    raw_n = int(train_ok[raw_rows(scan.labels, holdout)].sum())  # the raw arm's training items, trained or not
    budget = _apply_budget(model, opts.budget, raw_n, notes)
    prep_train, prep_test = model.prepare(train_x, test_x)
    store = _Store(TrainingCache(run.model_cache_dir / "eval", read=not opts.retrain), model.describe(),
                   digest(prep_train), digest(prep_test) + digest(test_ok), len(code), len(y_test))
    plans: list[_ArmPlan | None] = []
    first_of: dict[tuple, int] = {}  # an arm with the same items and labels as an earlier one is not retrained
    for i, arm in enumerate(arms):
        key = _arm_key(arm, scan.labels)
        if key is not None and key in first_of and plans[first_of[key]] is not None:
            plans.append(_ArmPlan(arm, [], same_as=first_of[key]))
            continue
        plan = _plan_arm(arm, train_ok, scan.labels, code, opts.seeds, store, notes, curve=opts.curve)
        if key is not None:
            first_of[key] = i
        plans.append(plan)
    if all(p is None for p in plans):
        raise CurateError(f"no arm can be trained: {'; '.join(notes)}")
    _train(plans, model, prep_train, prep_test, test_ok, store, opts)
    results = []
    for plan in plans:
        if plan is None:
            results.append(None)
        elif plan.same_as is not None:
            same = results[plan.same_as]
            res = arm_result(plan.arm, [{**r, "seconds": 0.0} for r in same["runs"]])
            res["info"] = {**res["info"], "same_as": same["name"]}
            results.append(res)
        else:
            results.append(arm_result(plan.arm, [t.score(y_test, leaked, model.schedule(len(t.rows)))
                                                 for t in plan.trainings]))
    results = [r for r in results if r is not None]
    add_deltas(results)
    test_desc = dict(test.description)
    if unknown:
        test_desc["unknown_classes"] = unknown
    result = {
        "format": FORMAT, "curate_version": curate.__version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "run": str(run.root),
        "model": model.describe(), "budget": budget, "features": feats.ref, "test": test_desc, "classes": classes,
        "seeds": list(range(opts.seeds)), "pending": opts.pending,
        "leakage": leak.to_json() if leak is not None else None,
        "arms": results, "notes": notes, "seconds": round(time.perf_counter() - t_start, 2),
    }
    write_results(run.root / "eval", result)
    return result


#: ``--budget`` values: how long each arm's torch training runs.
BUDGETS = ("samples", "epochs")


def _apply_budget(model, budget: str | None, raw_items: int, notes: list[str]) -> dict[str, Any] | None:
    """Set the model's training budget; its description for eval.json (None: the model has none).

    ``samples`` (the default for the torch models): every arm's training sees ``epochs`` x the raw arm's
    items, so a smaller arm runs more passes (the last one partial) and the same compute as raw, as
    DataComp's filtering track fixes the samples seen whatever the pool's size; ``epochs``: every arm
    ``epochs`` passes over its own items (a smaller arm trains less)."""
    if model.schedule(1) is None:  # tfidf: scikit-learn's solver runs to convergence
        if budget is not None:
            notes.append(f"--budget {budget}: the {model.name} model trains to convergence (scikit-learn), it has no "
                         "training budget")
        return None
    kind = budget or "samples"
    epochs = model.config.epochs
    if kind == "samples":
        model.config.samples = epochs * max(1, raw_items)
        return {"kind": "samples", "samples": model.config.samples, "raw_items": raw_items, "epochs": epochs}
    model.config.samples = None
    return {"kind": "epochs", "epochs": epochs, "raw_items": raw_items}


#: Fewer training items than this in a class after ``--test-split`` is an error (for a class that had twice as many).
MIN_TRAIN_PER_CLASS = 5


def _check_split(labels: list[str | None], holdout: np.ndarray, fraction: float | None) -> None:
    """``--test-split`` must leave enough training items per class: an error when the split (not the data)
    leaves some class fewer than :data:`MIN_TRAIN_PER_CLASS` (it had at least twice that many), e.g. 0.99
    of 300 items trains on 3."""
    total = Counter(lab for lab in labels if lab is not None)
    held = Counter(labels[r] for r in holdout.tolist())
    short = {c: t - held[c] for c, t in total.items()
             if t - held[c] < MIN_TRAIN_PER_CLASS and t >= 2 * MIN_TRAIN_PER_CLASS}
    if short:
        left = sum(t - held[c] for c, t in total.items())
        few = ", ".join(f"{c!r} {k}" for c, k in sorted(short.items(), key=lambda kv: kv[1])[:5])
        raise CurateError(f"--test-split {fraction}: holds out {len(holdout):,} items and leaves {left:,} to train on, "
                          f"fewer than {MIN_TRAIN_PER_CLASS} in {len(short)} class(es) ({few}); hold out a smaller "
                          "fraction (e.g. 0.2) or pass a --test set")


def _features(run, manifest, feats: Features, scan: _TrainScan, test: TestSet, *, quiet: bool):
    """(train_x, test_x, train_ok, test_ok): features of every training row and of the test items."""
    holdout = test.holdout_rows
    if feats.kind == "vectors":
        tx, tok = train_vectors(run, feats, scan.records(["meta"] if feats.stage is None else []))
        if not tok.any():
            raise CurateError(f"--features {feats.ref}: no training item has a vector there{_meta_lists_hint(scan.meta, feats)}")
        if holdout is not None:
            ex, eok = tx[holdout], tok[holdout]
        else:
            ex, eok = test_vectors(run, feats, test.records, manifest, quiet=quiet)
        if not eok.any():
            raise CurateError(f"--features {feats.ref}: no test item has a vector there (the test set needs the same "
                              f"meta key as the training items)")
        if ex.shape[1] != tx.shape[1]:
            raise CurateError(f"{feats.ref}: test vectors have {ex.shape[1]} dimensions, training vectors {tx.shape[1]}")
        return tx, ex, tok, eok
    if feats.kind == "pixels":
        if holdout is not None:
            return scan.pixels, scan.pixels[holdout], scan.pixels_ok, scan.pixels_ok[holdout]
        if "image" not in test.records.column_names or test.records.column("image").null_count == test.records.num_rows:
            raise CurateError("--test: the test items have no images, but the model trains on pixels")
        ex, eok = pixel_matrix(test.records.column("image").to_pylist(), feats.size, quiet=quiet, desc="decode test images")
        return scan.pixels, ex, scan.pixels_ok, eok
    texts = scan.texts
    te = [texts[r] for r in holdout] if holdout is not None else (
        test.records.column("text").to_pylist() if "text" in test.records.column_names else [None] * test.records.num_rows)
    return (np.array(texts, dtype=object), np.array(te, dtype=object),
            np.array([bool(t) for t in texts]), np.array([bool(t) for t in te]))


def _meta_lists_hint(meta: list[str | None], feats: Features) -> str:
    """For ``meta.<key>`` features: the meta keys that do hold lists (from the first items that have meta)."""
    if feats.stage is not None:
        return ""
    keys: dict[str, None] = {}
    for m in [m for m in meta if m][:100]:
        keys.update((k, None) for k, v in json.loads(m).items() if isinstance(v, list))
    return f"; meta keys holding lists: {', '.join(f'meta.{k}' for k in keys)}" if keys else "; no meta key holds a list"


def _arm_key(arm: Arm, given: list[str | None]) -> tuple | None:
    """Identity of an arm's training set (None for random arms: a new draw per seed)."""
    if arm.random_pool is not None:
        return None
    labels = tuple(arm.labels) if arm.labels is not None else tuple(given[r] for r in arm.rows)
    return (arm.rows.tobytes(), hash(labels))


@dataclass
class _Store:
    """The training cache with what every key of this eval shares."""

    cache: TrainingCache
    model_info: dict[str, Any]
    train_digest: str
    test_digest: str
    n_classes: int
    test_items: int

    def key(self, rows: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> str:
        from curate.eval.trained import training_key

        return training_key(self.model_info, self.train_digest, rows, y, n_classes, self.test_digest, seed)


@dataclass
class _Training:
    """One (arm, seed) training: its rows and labels, its cache key, and (once known) its test predictions."""

    seed: int
    rows: np.ndarray
    y: np.ndarray
    key: str
    pred: np.ndarray | None = None
    seconds: float = 0.0
    cached: bool = False
    curve: np.ndarray | None = None  # test predictions after every epoch (--curve)

    def score(self, y_test: np.ndarray, leaked: np.ndarray | None, schedule=None) -> dict[str, Any]:
        run = {"seed": self.seed, "train_items": int(len(self.rows)), "accuracy": round(accuracy(self.pred, y_test), 5),
               "seconds": round(self.seconds, 2)}
        if schedule is not None:  # what the training ran: epochs (fractional: a partial last pass), steps, samples
            run.update({k: v for k, v in schedule.describe().items() if k in ("epochs", "steps", "samples")})
        if self.cached:
            run["cached"] = True
        if leaked is not None:
            nl = accuracy(self.pred, y_test, ~leaked)
            run["accuracy_no_leak"] = None if nl is None else round(nl, 5)
        if self.curve is not None:
            run["curve"] = [round(accuracy(p, y_test), 5) for p in self.curve]
        return run


@dataclass
class _ArmPlan:
    arm: Arm
    trainings: list[_Training]
    same_as: int | None = None  # index of the earlier arm with the same items and labels


def _plan_arm(arm: Arm, train_ok, given, code, seeds: int, store: _Store, notes: list[str], *,
              curve: bool = False) -> _ArmPlan | None:
    """The arm's trainings, one per seed, with the stored predictions of those already done (with
    ``curve``, only those stored with their per-epoch curve)."""
    trainings = []
    for seed in range(seeds):
        rows = arm.rows_for(seed)
        labels = arm.labels if arm.random_pool is None and arm.labels is not None else None
        y = np.array([code[(labels[k] if labels is not None else given[r])] for k, r in enumerate(rows)], dtype=np.int64)
        keep = train_ok[rows]
        rows, y = rows[keep], y[keep]
        if len(np.unique(y)) < 2:
            notes.append(f"{arm.name}: fewer than two classes among its {len(rows)} items; not trained")
            return None
        t = _Training(seed, rows, y, store.key(rows, y, len(code), seed))
        hit = store.cache.get(t.key)
        if hit is not None and len(hit[0]) == store.test_items and not (curve and hit[2] is None):
            t.pred, t.seconds, t.cached, t.curve = hit[0], hit[1], True, hit[2] if curve else None
        trainings.append(t)
    return _ArmPlan(arm, trainings)


def _train(plans: list[_ArmPlan | None], model, train_x, test_x, test_ok, store: _Store, opts: EvalOptions) -> None:
    """Train every planned training not found in the cache (in ``opts.jobs`` processes) and store it."""
    from tqdm.auto import tqdm

    from curate.eval.jobs import Task, fit_predict, run_parallel

    todo = [(p, t) for p in plans if p is not None and p.same_as is None for t in p.trainings if t.pred is None]
    n_classes = store.n_classes
    unit = "epoch" if model.units(2) > 1 else "fit"
    if opts.jobs <= 1 or len(todo) <= 1:
        for plan in (p for p in plans if p is not None and p.same_as is None):
            with tqdm(total=sum(model.units(len(t.rows)) for t in plan.trainings), desc=f"arm {plan.arm.name}", unit=unit, file=sys.stderr,
                      disable=opts.quiet) as bar:
                for t in plan.trainings:
                    if t.pred is None:
                        t.pred, t.seconds, t.curve = fit_predict(model, train_x, test_x, test_ok, t.rows, t.y, n_classes,
                                                                 t.seed, progress=bar.update,
                                                                 checkpoint=store.cache.checkpoint(t.key), curve=opts.curve)
                        store.cache.put(t.key, t.pred, t.seconds, t.curve)
                    else:
                        bar.update(model.units(len(t.rows)))
        return
    threads = opts.threads or max(1, (os.cpu_count() or 1) // opts.jobs)
    settings = {**model.config.__dict__, "threads": threads}
    tasks = [Task((i, t.seed), model.name, settings, t.rows, t.y, n_classes, t.seed, store.cache.checkpoint(t.key), opts.curve)
             for i, (_, t) in enumerate(todo)]
    log.info("training %d arm-seeds in %d processes of %d thread(s)", len(tasks), opts.jobs, threads)
    with tqdm(total=sum(model.units(len(t.rows)) for t in tasks), desc=f"train ({opts.jobs} jobs)", unit=unit,
              file=sys.stderr, disable=opts.quiet) as bar:
        for (i, _), pred, secs, curve in run_parallel(tasks, train_x, test_x, test_ok, jobs=opts.jobs, threads=threads,
                                                      done=lambda task: bar.update(model.units(len(task.rows)))):
            t = todo[i][1]
            t.pred, t.seconds, t.curve = pred, secs, curve
            store.cache.put(t.key, pred, secs, curve)
