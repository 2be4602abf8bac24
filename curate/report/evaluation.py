"""The evaluation section: ``RUN/eval/eval.json`` as ``curate eval`` writes it (``format: 1``, see
:mod:`curate.eval.results`): the arms table, a chart of accuracy per arm, the arms' learning curves when
the eval ran with ``--curve``, leakage and notes."""

from __future__ import annotations

from typing import Any

from curate.eval.results import budget_line, curve_spread, mean_epochs
from curate.report import plots


def _mean(s: Any) -> float | None:
    return float(s["mean"]) if isinstance(s, dict) and isinstance(s.get("mean"), (int, float)) else None


def evaluation_section(ev: dict | None) -> dict | None:
    """Rows, chart and context of the evaluation, or None when there are no results."""
    if not ev or not isinstance(ev.get("arms"), list):
        return None
    rows, points = [], []
    for a in ev["arms"]:
        acc, nl = a.get("accuracy") or {}, a.get("accuracy_no_leak") or {}
        rows.append({"name": a.get("name"), "kind": a.get("kind"), "description": a.get("description"),
                     "train_items": a.get("train_items"), "accuracy": _mean(acc), "std": acc.get("std"),
                     "n": acc.get("n"), "delta": a.get("delta_vs_raw"), "no_leak": _mean(nl),
                     "seconds": a.get("seconds"), "epochs": mean_epochs(a.get("runs"))})
        m = _mean(acc)
        if m is not None:
            points.append({"metric": "accuracy", "arm": str(a.get("name")), "value": m,
                           "low": float(acc.get("min", m)), "high": float(acc.get("max", m))})
        if _mean(nl) is not None:
            points.append({"metric": "accuracy without leaked test items", "arm": str(a.get("name")),
                           "value": _mean(nl), "low": float(nl.get("min", _mean(nl))), "high": float(nl.get("max", _mean(nl)))})
    model = ev.get("model") or {}
    seeds = max((r["n"] or 0 for r in rows), default=0)
    chart = plots.grouped_bars(points, category="metric", series="arm", value="value", error_low="low", error_high="high",
                               value_title="test accuracy",
                               title=f"Test accuracy per arm ({_over_seeds(seeds, 'black line')})") if points else None
    leak = ev.get("leakage")
    return {"rows": rows, "chart": chart, "curve_chart": _curve_chart(ev["arms"], ev.get("budget")),
            "curve_note": _curve_note(ev.get("budget")), "model": model,
            "budget": budget_line(ev), "any_epochs": any(r["epochs"] is not None for r in rows),
            "features": ev.get("features"), "test": ev.get("test") or {},
            "classes": ev.get("classes") or [], "seeds": ev.get("seeds") or [], "pending": ev.get("pending"),
            "leakage": leak if isinstance(leak, dict) else None, "notes": ev.get("notes") or [],
            "created": ev.get("created"), "seconds": ev.get("seconds")}


def _over_seeds(n: int, spread: str) -> str:
    return "1 seed" if n == 1 else f"mean over {n} seeds; {spread}: min to max"


def _curve_note(budget: Any) -> str:
    """How to read the learning-curve chart (its x axis depends on the training budget)."""
    samples = isinstance(budget, dict) and budget.get("kind") == "samples"
    when = ("after every pass over each arm's own items, placed by the samples seen (a smaller arm makes more "
            "passes; its last one may be partial), so arms are compared at equal compute" if samples
            else "after every epoch")
    return (f"From curate eval --curve: the test set scored {when}. A curve that climbs and then falls is "
            "memorising wrong labels; curves still climbing at the end would gain from a longer training.")


def _curve_chart(arms: list, budget: Any = None) -> dict | None:
    """Each arm's test accuracy after every epoch (``curate eval --curve``): mean over seeds, band min to max;
    None when no arm has a curve. An arm trained as an earlier one (``info.same_as``) is named so, since its
    line lies under that arm's. Under ``--budget samples`` the x axis is the samples seen, in epochs of the raw
    arm (an arm of 60% of raw's size has a point every 0.6), so the arms are compared at the same compute."""
    raw_items = budget.get("raw_items") if isinstance(budget, dict) and budget.get("kind") == "samples" else None
    rows, seeds = [], set()
    for a in arms:
        c = curve_spread(a.get("runs") if isinstance(a, dict) else None)
        if c is None:
            continue
        same = (a.get("info") or {}).get("same_as")
        name = f"{a.get('name')} (= {same})" if same else str(a.get("name"))
        seeds.add(c["n"])
        items, total = a.get("train_items"), (a.get("runs") or [{}])[0].get("samples")
        if raw_items and items and total:  # samples seen after each pass (the last one possibly partial)
            xs = [min((i + 1) * items, total) / raw_items for i in range(len(c["mean"]))]
        else:
            xs = [i + 1 for i in range(len(c["mean"]))]
        rows += [{"series": name, "epoch": round(x, 4), "value": m, "low": lo, "high": hi, "n": c["n"]}
                 for x, m, lo, hi in zip(xs, c["mean"], c["min"], c["max"])]
    if not rows:
        return None
    if raw_items:
        return plots.curves(rows, title=f"Test accuracy over the training budget ({_over_seeds(max(seeds), 'band')})",
                            x_title=f"samples seen, in epochs of the raw arm ({raw_items:,} items)")
    return plots.curves(rows, title=f"Test accuracy after each epoch ({_over_seeds(max(seeds), 'band')})")
