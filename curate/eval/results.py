"""``RUN/eval/eval.json`` and the terminal table.

The file's shape (``format: 1``; read by ``curate report``; documented in docs/eval.md)::

    {
      "format": 1, "curate_version": "...", "created": "2026-...Z", "run": "runs/x", "seconds": 123.4,
      "model": {"name": "linear", "features": "vectors", "epochs": 30, "samples": 1500000, ...},
      "budget": {"kind": "samples", "samples": 1500000, "raw_items": 50000, "epochs": 30}
                | {"kind": "epochs", "epochs": 30, "raw_items": 50000} | null (tfidf: trains to convergence),
      "features": "embed.image_embedding",
      "test": {"kind": "input" | "split", "items": 10000, "path": ..., "format": ..., "fraction": ...,
               "unknown_classes": {"label": count}},
      "classes": ["airplane", ...],
      "seeds": [0, 1, 2], "pending": "drop",
      "leakage": {"checked": ["exact", "image_hash", "embedding"], "leaked_test_items": 12, "test_items": 10000,
                  "by_method": {"exact": 3, ...}, "params": {...}, "seconds": 4.2,
                  "examples": {"exact": [{"test": src, "train": src, "distance": 2}]},   # at most 20 per method
                  "leaked_sources": [test item source, ...]}
                 | null (--no-leakage-check),
      "arms": [
        {"name": "raw" | "curated" | "random" | "without:01-label_noise" | "relabelled:01-label_noise" | "ceiling",
         "kind": "raw" | "curated" | "random" | "without" | "relabelled" | "ceiling",
         "stage": null | "01-label_noise", "description": "...", "train_items": 50000, "info": {...},
         "runs": [{"seed": 0, "train_items": 50000, "accuracy": 0.75, "accuracy_no_leak": 0.749, "seconds": 3.2,
                   "epochs": 30.0, "steps": 2940, "samples": 1500000 (torch models: what the training ran;
                   epochs is fractional when its last pass over the items was partial),
                   "cached": true (only when the training was reused from the model cache's eval/ folder),
                   "curve": [0.41, 0.52, ...] (only with --curve: test accuracy after each epoch)}],
         "accuracy": {"mean": 0.75, "std": 0.002, "min": ..., "max": ..., "n": 3},
         "accuracy_no_leak": {...} | null,
         "delta_vs_raw": 0.013 | null, "seconds": 9.6}
      ],
      "notes": ["relabelled: no stage of this run suggests labels ..."],
      "previous": "history/2026-12-01T09-00-00+00-00-linear.json" (where the eval.json this one replaced is kept)
    }

``std`` is the sample standard deviation over seeds (0 for one seed). An arm whose items and labels are
exactly an earlier arm's is not trained again: its ``runs`` are copied (``seconds`` 0) and
``info.same_as`` names that arm. ``accuracy_no_leak`` scores the test
items that are not leaked (null when the check was skipped). The same object is also written to
``RUN/eval/eval-<model>.json``, so evals with several models sit side by side, and an eval.json or
eval-<model>.json that a new eval replaces is first copied to ``RUN/eval/history/<created>-<model>.json``
(:func:`write_results`): no earlier result is lost.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from curate import storage

log = logging.getLogger(__name__)

FORMAT = 1


def spread(values: list[float | None]) -> dict[str, Any] | None:
    """Mean, sample std, min, max and count of the non-null values (None when there are none)."""
    v = np.array([x for x in values if x is not None], dtype=np.float64)
    if not len(v):
        return None
    return {"mean": round(float(v.mean()), 5), "std": round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 5),
            "min": round(float(v.min()), 5), "max": round(float(v.max()), 5), "n": int(len(v))}


def arm_result(arm, runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"name": arm.name, "kind": arm.kind, "stage": arm.stage, "description": arm.description,
            "train_items": arm.size, "info": arm.info, "runs": runs,
            "accuracy": spread([r["accuracy"] for r in runs]),
            "accuracy_no_leak": spread([r.get("accuracy_no_leak") for r in runs]),
            "seconds": round(sum(r["seconds"] for r in runs), 2)}


def curve_spread(runs: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """Per epoch, the mean, min and max test accuracy over the runs with a ``curve`` (``--curve``), and how
    many runs that is; None when no run has one, their lengths differ, or there is one epoch only (tfidf
    trains in one step: no curve to draw)."""
    curves = [r["curve"] for r in runs or [] if r.get("curve")]
    if not curves or len({len(c) for c in curves}) != 1 or len(curves[0]) < 2:
        return None
    a = np.array(curves, dtype=np.float64)
    return {"mean": a.mean(axis=0).round(5).tolist(), "min": a.min(axis=0).tolist(),
            "max": a.max(axis=0).tolist(), "n": len(curves)}


def add_deltas(arms: list[dict[str, Any]]) -> None:
    raw = next((a for a in arms if a["kind"] == "raw" and a["accuracy"]), None)
    for a in arms:
        a["delta_vs_raw"] = (round(a["accuracy"]["mean"] - raw["accuracy"]["mean"], 5)
                             if raw is not None and a["accuracy"] else None)


def _history_name(ev: dict[str, Any]) -> str:
    created = str(ev.get("created") or "undated").replace(":", "-")
    model = str((ev.get("model") or {}).get("name") or "model")
    return f"{created}-{model}.json"


def write_results(eval_dir, result: dict[str, Any]) -> str | None:
    """Write ``result`` as ``eval_dir/eval.json`` and ``eval_dir/eval-<model>.json``; the files it replaces are
    first kept under ``eval_dir/history/`` (named by their creation time and model). Returns (and records in
    ``result["previous"]``) where the replaced eval.json is kept, relative to ``eval_dir``; None if there was none."""
    eval_dir = storage.location(eval_dir)
    previous = None
    for name in ("eval.json", f"eval-{result['model']['name']}.json"):
        p = eval_dir / name
        if not p.exists():
            continue
        try:
            old = json.loads(p.read_bytes())
        except (OSError, ValueError) as e:
            old, why = None, e
        if not isinstance(old, dict):
            log.warning("eval: %s is unreadable (%s); it is replaced", p, why if old is None else "not an object")
            continue
        keep = f"history/{_history_name(old)}"
        if not (eval_dir / keep).exists():
            storage.write_bytes(eval_dir / keep, p.read_bytes())
        if name == "eval.json":
            previous = keep
    if previous is not None:
        result["previous"] = previous
    storage.write_json(result, eval_dir / "eval.json")
    storage.write_json(result, eval_dir / f"eval-{result['model']['name']}.json")
    return previous


def budget_line(result: dict[str, Any]) -> str | None:
    """What the eval's training budget was, in words (None: no torch training, e.g. tfidf)."""
    b = result.get("budget")
    model = result.get("model") or {}
    if not isinstance(b, dict):
        if model.get("name") == "tfidf" or "epochs" not in model:
            return None
        b = {"kind": "epochs", "epochs": model.get("epochs")}  # evals from before budgets: fixed epochs
    if b.get("kind") == "samples":
        return (f"training budget: samples: every arm trained on {b['samples']:,} samples ({b['epochs']} epochs of "
                f"the raw arm's {b['raw_items']:,} items; a smaller arm runs more epochs)")
    return (f"training budget: epochs: every arm trained {b.get('epochs')} epochs of its own items (a smaller arm "
            "trains on fewer samples)")


def mean_epochs(runs: Any) -> float | None:
    """The epochs an arm's trainings ran, mean over its runs (fractional under ``--budget samples``); None
    when its runs do not say (tfidf, evals from before budgets)."""
    e = [r["epochs"] for r in runs or [] if isinstance(r, dict) and isinstance(r.get("epochs"), (int, float))]
    return float(np.mean(e)) if e else None


def _epochs(runs: list[dict[str, Any]]) -> str:
    e = mean_epochs(runs)
    return "-" if e is None else f"{e:.2f}".rstrip("0").rstrip(".")


def _pm(s: dict | None) -> str:
    if not s:
        return "-"
    return f"{s['mean']:.4f} ± {s['std']:.4f}" if s["n"] > 1 else f"{s['mean']:.4f}"


#: At most this many epochs are columns of the terminal's learning-curve table (eval.json has them all).
CURVE_COLUMNS = 10


def _curve_table(curves: list[tuple[str, dict[str, Any]]]) -> str:
    """Each arm's mean test accuracy after the epochs (``--curve``): every epoch up to :data:`CURVE_COLUMNS`,
    else every k-th (always the first and the last)."""
    from curate.textui import render_table

    n = max(len(c["mean"]) for _, c in curves)
    step = -(-n // CURVE_COLUMNS)
    shown = sorted({1, *range(step, n + 1, step), n})
    uneven = len({len(c["mean"]) for _, c in curves}) > 1  # --budget samples: a smaller arm runs more epochs
    rows = [[name] + [f"{c['mean'][e - 1]:.3f}" if e <= len(c["mean"]) else "-" for e in shown]
            + ([f"{c['mean'][-1]:.3f}"] if uneven else []) for name, c in curves]
    every = f"; every {step} epochs, all in eval.json" if step > 1 else ""
    own = "; each arm's own epochs, 'end' is its last (possibly partial) one" if uneven else ""
    return (f"test accuracy after each epoch (--curve; mean over seeds{every}{own}):\n"
            + render_table(["epoch"] + [str(e) for e in shown] + (["end"] if uneven else []), rows))


def render(result: dict[str, Any]) -> str:
    """The terminal table of an eval result (plus leakage and notes lines)."""
    from curate.textui import render_table

    leak = result.get("leakage")
    rows = []
    for a in result["arms"]:
        d = a.get("delta_vs_raw")
        name = a["name"] + (f" (= {a['info']['same_as']})" if a.get("info", {}).get("same_as") else "")
        rows.append([name, a["train_items"], _epochs(a["runs"]), _pm(a["accuracy"]),
                     "-" if d is None or a["kind"] == "raw" else f"{d:+.4f}",
                     _pm(a["accuracy_no_leak"]) if leak else "-", a["seconds"]])
    seeds = len(result["seeds"])
    head = ["arm", "train items", "epochs", f"accuracy ({seeds} seed{'s' if seeds != 1 else ''})", "vs raw",
            "without leaked", "seconds"]
    budget = budget_line(result)
    lines = [f"model {result['model']['name']} on {result['features']}; test set: {result['test']['items']:,} items "
             f"({result['test']['kind']}); classes: {len(result['classes'])}"] + ([budget] if budget else []) + \
        ["", render_table(head, rows, right={1, 2, 3, 4, 5, 6})]
    if leak:
        by = ", ".join(f"{k} {v:,}" for k, v in leak["by_method"].items())
        lines.append(f"\nleakage: {leak['leaked_test_items']:,} of {leak['test_items']:,} test items duplicate a "
                     f"training item ({by}); 'without leaked' scores the rest")
    curves = [(a["name"], curve_spread(a["runs"])) for a in result["arms"]]
    curves = [(name, c) for name, c in curves if c]
    if curves:
        lines += ["", _curve_table(curves)]
    for note in result.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines)
