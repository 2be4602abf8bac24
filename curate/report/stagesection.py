"""The per-stage section: reason counts, a histogram per declared score with its threshold, the stage's
own summary figures (confusion heat map, cluster sizes, ...) and the summary as a table."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Callable

import numpy as np

from curate.report import plots
from curate.report.gather import StageData

_SIZE_BINS = [(2, 2), (3, 3), (4, 4), (5, 5), (6, 10), (11, 20), (21, 50), (51, 100), (101, 1000), (1001, None)]


def score_charts(stage: StageData) -> list[dict]:
    """One histogram per scored column, with every threshold on it and the counts on each side."""
    out = stage.outputs
    flags = stage.flags()
    by_column: dict[str, list] = {}
    for spec in out.scores:
        if spec.column in stage.table.column_names:
            by_column.setdefault(spec.column, []).append(spec)
    for c in out.columns:  # declared scores without a threshold (e.g. the CLIP score of a repaired caption)
        if c.role == "score" and c.name not in by_column and c.name in stage.table.column_names:
            by_column[c.name] = []
    charts = []
    for column, specs in by_column.items():
        values = stage.numbers(column)
        finite = np.isfinite(values)
        if not finite.any():
            continue
        flagged = np.isin(flags, [s.flag for s in specs]) if specs else None
        cuts, notes = [], []
        for spec in specs:
            t = stage.threshold(spec)
            n_flag = int((flags == spec.flag).sum())
            if t is not None:
                hit = finite & ((values < t) if spec.flags_when == "below" else (values > t))
                cuts.append({"threshold": t, "flags_when": spec.flags_when, "flag": spec.flag, "flagged": int(hit.sum())})
            elif spec.param and spec.param in stage.entry.params:
                notes.append(f"{spec.flag}: off ({spec.param} is not set)")
            else:
                notes.append(f"{spec.flag}: {n_flag:,} flagged by the stage's own rule (no fixed threshold)")
        label = next((s.label for s in specs if s.label), "") or column
        desc = next((c.description for c in out.columns if c.name == column), "")
        title = f"{label} ({column})" if label != column else column
        n_flagged = int((flagged & finite).sum()) if flagged is not None else None
        note = f"{int(finite.sum()):,} items with a value"
        if n_flagged is not None:
            note += f": {n_flagged:,} flagged, {int(finite.sum()) - n_flagged:,} pass"
        if notes:
            note += "; " + "; ".join(notes)
        charts.append({"spec": plots.score_histogram(values, flagged, title=title, score=column, cuts=cuts),
                       "note": note, "description": desc, "column": column,
                       "sides": cuts, "flagged": n_flagged, "with_value": int(finite.sum())})
    return charts


def _source_group(source: str | None) -> str | None:
    """The first component of a source path (``train/cat/1.jpg`` -> ``train``; a tar shard, a manifest)."""
    if not source:
        return None
    for sep in ("/", "::", ":", "#"):
        if sep in source:
            return source.split(sep, 1)[0]
    return None


def source_groups(sources: list) -> list:
    """The source group of every item (see :func:`_source_group`)."""
    return [_source_group(x) for x in sources]


def score_by_group(stage: StageData, groups: list, labels: list, max_groups: int = 20) -> list[dict]:
    """For a stage with one scored column: its mean per source group and per label, where there are 2 to
    ``max_groups`` of them (e.g. CLIP score by the shard or folder items came from)."""
    columns = list(dict.fromkeys(s.column for s in stage.outputs.scores if s.column in stage.table.column_names))
    if len(columns) != 1 or stage.outputs.column_with_role("duplicate_group"):
        return []  # (a duplicate stage's score is a distance to the group's representative: not per group)
    column = columns[0]
    values = stage.numbers(column)
    out = []
    for what, keys in (("source", groups), ("label", labels)):
        sums: dict[str, list[float]] = {}
        for k, v in zip(keys, values.tolist()):
            if k is not None and v == v:  # not NaN
                sums.setdefault(str(k), []).append(v)
        if 2 <= len(sums) <= max_groups:
            means = {k: float(np.mean(v)) for k, v in sorted(sums.items())}
            out.append({"spec": plots.bar(means, title=f"Mean {column} by {what}", x=f"mean {column}", y=what,
                                          fmt=".4g", sort=False),
                        "note": ", ".join(f"{k}: {len(v):,}" for k, v in sorted(sums.items())) + " items"})
    return out


def cluster_sizes(stage: StageData) -> dict | None:
    """The distribution of duplicate-cluster sizes (clusters of two or more)."""
    col = stage.outputs.column_with_role("duplicate_group")
    if not col or col not in stage.table.column_names:
        return None
    _, counts, _, _ = stage.clusters(col)
    sizes = Counter(counts.tolist())
    if not sizes:
        return None
    rows = []
    for lo, hi in _SIZE_BINS:
        n = sum(c for s, c in sizes.items() if s >= lo and (hi is None or s <= hi))
        if n:
            rows.append({"size": str(lo) if lo == hi else (f"{lo}–{hi}" if hi else f"> {lo - 1}"), "clusters": n})
    total = sum(s * c for s, c in sizes.items())
    return {"spec": plots.columns_chart(rows, x="size", y="clusters", title="Duplicate-cluster sizes",
                                        x_title="items in the cluster", y_title="clusters", log_y=True),
            "note": f"{sum(sizes.values()):,} clusters holding {total:,} items; the largest has {max(sizes):,}"}


def label_noise_charts(summary: dict) -> list[dict]:
    """From a label-noise summary: confused pairs as a heat map, the noise rate per class."""
    out = []
    pairs = summary.get("confused_pairs")
    if isinstance(pairs, list) and pairs and all(isinstance(p, dict) for p in pairs):
        rows = [{"given": str(p.get("given")), "likely": str(p.get("likely")), "items": p.get("count", 0)} for p in pairs]
        out.append({"spec": plots.heatmap(rows, x="likely", y="given", value="items",
                                          title="Most confused pairs: given label vs likely true label"),
                    "note": "estimated counts from cleanlab's confident joint"})
    noise = summary.get("noise_rate_per_class")
    if isinstance(noise, dict) and noise:
        out.append({"spec": plots.bar({k: v for k, v in noise.items()}, title="Estimated noise rate per given class",
                                      x="noise rate", y="class", fmt=".1%"), "note": ""})
    return out


#: Stage summary keys that carry a figure of their own, and how to draw it.
SUMMARY_CHARTS: dict[str, Callable[[dict], list[dict]]] = {"confused_pairs": label_noise_charts}


def summary_table(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary as (key, value) text; nested values as compact JSON, long ones cut."""
    rows = []
    for k, v in summary.items():
        if isinstance(v, float):
            text = f"{v:.6g}"
        elif isinstance(v, (dict, list)):
            text = json.dumps(v, ensure_ascii=False, default=str)
            if len(text) > 600:
                text = text[:599] + "…"
        else:
            text = str(v)
        rows.append((str(k), text))
    return rows


def stage_figures(stage: StageData, groups: list | None = None, labels: list | None = None) -> dict:
    """Everything of one stage except its galleries (``groups``/``labels``: per record, its source group and
    label, for the scores by group)."""
    e = stage.entry
    reasons = dict(sorted(e.stats.reasons.items(), key=lambda kv: -kv[1]))
    actions = Counter(zip(*stage.flagged_columns("flag", "action")))
    reason_rows = [{"reason": r, "items": n, **{a: actions.get((r, a), 0) for a in ("keep", "review", "drop")},
                    "edit": r in e.outputs.edit_flags} for r, n in reasons.items()]
    charts = []
    if len(reasons) > 1:
        charts.append({"spec": plots.bar(reasons, title="Flagged items by reason"), "note": ""})
    charts += score_charts(stage)
    sizes = cluster_sizes(stage)
    if sizes:
        charts.append(sizes)
    if groups is not None and labels is not None:
        charts += score_by_group(stage, groups, labels)
    for key, fn in SUMMARY_CHARTS.items():
        if key in (e.summary or {}):
            charts += fn(e.summary)
    return {"entry": e, "reasons": reason_rows, "charts": charts, "summary": summary_table(e.summary or {})}
