"""``curate report``: gather, select, draw, render; one self-contained HTML file."""

from __future__ import annotations

import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from curate import __version__
from curate.report import plots, vega
from curate.report.evaluation import evaluation_section
from curate.report.galleries import Selection, by_kind, gallery_rows, stage_galleries
from curate.report.gather import load_run
from curate.report.outcome import collect_outcomes
from curate.report.render import render_report
from curate.report.review import review_summary
from curate.report.stagesection import source_groups, stage_figures
from curate.report.thumbs import SIZE, thumbnail
from curate.rundir import RunDir, atomic_path

#: Quarantined inputs listed by name (the count by reason is always complete).
QUARANTINE_ROWS = 500


def default_output(run_dir: str | Path) -> Path:
    return RunDir(run_dir).root / "report" / "index.html"


class _Charts:
    """Collects chart specs; the template refers to them by id."""

    def __init__(self):
        self.specs: dict[str, dict] = {}

    def add(self, spec: dict | None) -> str | None:
        if spec is None:
            return None
        key = f"c{len(self.specs)}"
        self.specs[key] = spec
        return key


def build_report(run_dir: str | Path, out: str | Path | None = None, *, top: int = 24, sample: int = 24,
                 seed: int = 0, page_size: int = 24, pending: str = "drop", quiet: bool = False) -> Path:
    """Write the report of a finished run to ``out`` (default ``RUN/report/index.html``); returns the path.

    ``top``/``sample``: per gallery, the most extreme items by score and a seeded random sample of the rest;
    ``page_size``: cards per gallery page (duplicate clusters: half as many).
    ``pending``: the export rule for undecided review items, used for the outcome counts."""
    t0 = time.perf_counter()
    vega.require_extra()
    out = Path(out) if out is not None else default_output(run_dir)
    data = load_run(run_dir)
    bar = tqdm(total=3 + len(data.stages), desc="report", unit="step", file=sys.stderr, disable=quiet)
    try:
        bar.set_postfix_str("outcomes")
        outcomes = collect_outcomes(data.run, pending=pending)
        bar.update()
        charts = _Charts()
        sel = Selection(top=top, sample=sample, seed=seed)
        stages = []
        groups = source_groups(data.sources)
        for si, stage in enumerate(data.stages):
            bar.set_postfix_str(stage.entry.dir)
            fig = stage_figures(stage, groups, data.labels)
            for c in fig["charts"]:
                c["id"] = charts.add(c.pop("spec"))
            fig["galleries"] = stage_galleries(data, stage, sel, f"s{si}")
            stages.append(fig)
            bar.update()
        bar.set_postfix_str("galleries")
        kinds = by_kind(data, sel)
        bar.update()
        all_galleries = [g for s in stages for g in s["galleries"]] + [g for _, gs in kinds for g in gs]
        rows = sorted(gallery_rows(all_galleries))
        thumbs: dict[int, str] = {}
        if rows:
            images = data.images(rows)
            for r in tqdm(rows, desc="thumbnails", unit="img", file=sys.stderr, disable=quiet, leave=False):
                uri = thumbnail(images.get(r))
                if uri:
                    thumbs[r] = uri
        bar.set_postfix_str("render")
        context = {
            "run": _run_context(data, outcomes, charts),
            "stages": stages,
            "kinds": kinds,
            "quarantine": _quarantine(data),
            "review": review_summary(data, outcomes),
            "evaluation": _evaluation(data, charts),
            "selection": {"top": top, "sample": sample, "seed": seed, "thumb_px": SIZE, "page_size": max(1, page_size)},
            "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "curate_version": __version__,
            "libraries": vega.versions(),
        }
        context["build_seconds"] = round(time.perf_counter() - t0, 1)
        html = render_report(context, charts.specs, thumbs)
        with atomic_path(out) as tmp:
            tmp.write_text(html, encoding="utf-8")
        bar.update()
    finally:
        bar.close()
    return out


def _run_context(data, outcomes, charts: _Charts) -> dict:
    m = data.manifest
    timings = []
    if m.input is not None:
        timings.append({"step": "ingest", "rows": m.input.rows, "seconds": m.input.seconds})
    for s in m.stages:
        timings.append({"step": s.dir, "rows": s.stats.rows, "seconds": s.seconds})
    stage_rows = []
    for s in data.stages:
        acts = Counter(s.flagged_columns("action")[0])
        for a in ("keep", "review", "drop"):
            if acts.get(a):
                stage_rows.append({"stage": s.entry.dir, "action": a, "items": acts[a]})
    return {
        "manifest": m,
        "root": str(data.run.root),
        "n_items": data.n,
        "pipeline_yaml": yaml.safe_dump(m.config, sort_keys=False, allow_unicode=True) if m.config else "",
        "timings": timings,
        "total_seconds": round(sum(t["seconds"] or 0 for t in timings), 1),
        "outcomes": outcomes,
        "why": outcomes.by_fate_and_why(),
        "reason_fates": outcomes.stage_reason_table(),
        "outcome_chart": charts.add(plots.outcome_bar(outcomes.by_fate_and_why())) if data.n else None,
        "stage_chart": charts.add(plots.stage_actions_bar(stage_rows)) if stage_rows else None,
        "timing_chart": charts.add(plots.bar({t["step"]: t["seconds"] or 0 for t in timings}, title="Seconds per step",
                                             x="seconds", y="step", fmt=".1f", sort=False)) if timings else None,
    }


def _quarantine(data) -> dict:
    q = data.quarantine
    reasons = Counter(q.column("reason").to_pylist()) if q.num_rows else Counter()
    rows = q.slice(0, QUARANTINE_ROWS).to_pylist()
    return {"total": q.num_rows, "by_reason": dict(reasons.most_common()), "rows": rows,
            "rule": f"the first {len(rows):,} of {q.num_rows:,}" if q.num_rows > len(rows) else f"all {q.num_rows:,}"}


def _evaluation(data, charts: _Charts) -> dict | None:
    sec = evaluation_section(data.evaluation)
    if sec is not None:
        sec["chart_id"] = charts.add(sec.pop("chart"))
        sec["curve_chart_id"] = charts.add(sec.pop("curve_chart"))
        sec["path"] = str(data.eval_path)
    elif data.eval_path is not None:
        sec = {"unreadable": str(data.eval_path)}
    return sec
