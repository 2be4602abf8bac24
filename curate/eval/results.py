"""``RUN/eval/eval.json`` and the terminal table.

The file's shape (``format: 1``; read by ``curate report``; documented in docs/eval.md)::

    {
      "format": 1, "curate_version": "...", "created": "2026-...Z", "run": "runs/x", "seconds": 123.4,
      "model": {"name": "linear", "features": "vectors", "epochs": 30, ...},
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
                   "cached": true (only when the training was reused from the model cache's eval/ folder),
                   "curve": [0.41, 0.52, ...] (only with --curve: test accuracy after each epoch)}],
         "accuracy": {"mean": 0.75, "std": 0.002, "min": ..., "max": ..., "n": 3},
         "accuracy_no_leak": {...} | null,
         "delta_vs_raw": 0.013 | null, "seconds": 9.6}
      ],
      "notes": ["relabelled: no stage of this run suggests labels ..."]
    }

``std`` is the sample standard deviation over seeds (0 for one seed). An arm whose items and labels are
exactly an earlier arm's is not trained again: its ``runs`` are copied (``seconds`` 0) and
``info.same_as`` names that arm. ``accuracy_no_leak`` scores the test
items that are not leaked (null when the check was skipped). The same object is also written to
``RUN/eval/eval-<model>.json``, so evals with several models sit side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
    rows = [[name] + [f"{c['mean'][e - 1]:.3f}" if e <= len(c["mean"]) else "-" for e in shown] for name, c in curves]
    every = f"; every {step} epochs, all in eval.json" if step > 1 else ""
    return (f"test accuracy after each epoch (--curve; mean over seeds{every}):\n"
            + render_table(["epoch"] + [str(e) for e in shown], rows))


def render(result: dict[str, Any]) -> str:
    """The terminal table of an eval result (plus leakage and notes lines)."""
    from curate.textui import render_table

    leak = result.get("leakage")
    rows = []
    for a in result["arms"]:
        d = a.get("delta_vs_raw")
        name = a["name"] + (f" (= {a['info']['same_as']})" if a.get("info", {}).get("same_as") else "")
        rows.append([name, a["train_items"], _pm(a["accuracy"]),
                     "-" if d is None or a["kind"] == "raw" else f"{d:+.4f}",
                     _pm(a["accuracy_no_leak"]) if leak else "-", a["seconds"]])
    seeds = len(result["seeds"])
    head = ["arm", "train items", f"accuracy ({seeds} seed{'s' if seeds != 1 else ''})", "vs raw",
            "without leaked", "seconds"]
    lines = [f"model {result['model']['name']} on {result['features']}; test set: {result['test']['items']:,} items "
             f"({result['test']['kind']}); classes: {len(result['classes'])}", "",
             render_table(head, rows, right={1, 2, 3, 4, 5})]
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
