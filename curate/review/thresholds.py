"""Thresholds: how many items a threshold on a stage's score would flag, and saving it as a pipeline.

Which score, param and direction belong to a flag comes from the stage's declared :class:`ScoreSpec`
(:mod:`curate.review.roles`); nothing here guesses them from names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from curate.errors import CurateError
from curate.rundir import RunDir, atomic_path


def would_flag(values: np.ndarray, threshold: float, *, above: bool) -> int:
    """Number of items a threshold flags (NaN scores never are)."""
    v = values[~np.isnan(values)]
    return int((v > threshold).sum() if above else (v < threshold).sum())


def histogram(values: np.ndarray, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """``(counts, edges)`` over the finite values (empty arrays when there are none)."""
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return np.array([], int), np.array([], float)
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        hi = lo + 1.0
    return np.histogram(v, bins=bins, range=(lo, hi))


def save_pipeline(run: RunDir, stage_index: int, stage_name: str, param: str, value: float) -> Path:
    """Write a copy of the run's pipeline with ``param`` of stage ``stage_index`` set to ``value``.

    Starts from the original pipeline file when it still exists (keeping its other settings as written),
    else from the resolved config in the manifest. The copy goes to ``<run>/pipelines/`` (the app only
    writes inside the run directory); returns its path.
    """
    manifest = run.require()
    src = manifest.pipeline_file
    doc = None
    if src and Path(src).is_file():
        from curate.config import load_yaml, resolve_relative_paths

        # the copy lives elsewhere: its relative paths are made absolute against the original's folder;
        # read with the pipeline loader, so that a key like 'on:' stays the string "on" (not true)
        doc = resolve_relative_paths(load_yaml(Path(src).read_text(encoding="utf-8"), src), Path(src).resolve().parent)
    if not isinstance(doc, dict) or not isinstance(doc.get("stages"), list):
        doc = dict(manifest.config or {})
    stages = doc.get("stages") or []
    if stage_index >= len(stages):
        raise CurateError(f"stage {stage_index} ({stage_name}) is not in the pipeline")
    entry = stages[stage_index]
    if isinstance(entry, str):
        entry = {entry: {}}
    (name, params), = entry.items()
    if name != stage_name:
        raise CurateError(f"stage {stage_index} of the pipeline is {name!r}, not {stage_name!r}; was the pipeline edited?")
    params = dict(params or {})
    params[param] = value
    stages[stage_index] = {name: params}
    doc["stages"] = stages
    value_txt = f"{value:g}".replace(".", "_").replace("-", "m")
    base = doc.get("name") or manifest.name or "pipeline"
    out = run.root / "pipelines" / f"{base}-{stage_name}-{param}-{value_txt}.yaml"
    with atomic_path(out) as tmp:
        tmp.write_text(f"# written by curate review from {src or 'the run manifest'}: {stage_name}.{param} = {value:g}\n"
                       + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out
