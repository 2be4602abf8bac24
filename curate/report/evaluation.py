"""The evaluation section: ``RUN/eval/eval.json`` as ``curate eval`` writes it (``format: 1``, see
:mod:`curate.eval.results`): the arms table, a chart of accuracy per arm, leakage and notes."""

from __future__ import annotations

from typing import Any

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
                     "seconds": a.get("seconds")})
        m = _mean(acc)
        if m is not None:
            points.append({"metric": "accuracy", "arm": str(a.get("name")), "value": m,
                           "low": float(acc.get("min", m)), "high": float(acc.get("max", m))})
        if _mean(nl) is not None:
            points.append({"metric": "accuracy without leaked test items", "arm": str(a.get("name")),
                           "value": _mean(nl), "low": float(nl.get("min", _mean(nl))), "high": float(nl.get("max", _mean(nl)))})
    model = ev.get("model") or {}
    chart = plots.grouped_bars(points, category="metric", series="arm", value="value", error_low="low", error_high="high",
                               title="Test accuracy per arm (mean over seeds; bars: min to max)") if points else None
    leak = ev.get("leakage")
    return {"rows": rows, "chart": chart, "model": model, "features": ev.get("features"), "test": ev.get("test") or {},
            "classes": ev.get("classes") or [], "seeds": ev.get("seeds") or [], "pending": ev.get("pending"),
            "leakage": leak if isinstance(leak, dict) else None, "notes": ev.get("notes") or [],
            "created": ev.get("created"), "seconds": ev.get("seconds")}
