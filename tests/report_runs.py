"""Runs the report tests build on, made once per test session (shared by tests/test_report*.py):

* ``demo_run``: ``pipelines/demo.yaml`` on the bundled COCO example (six stages, a quarantined input,
  the ``<img src=x onerror=...>`` caption).
* ``full_run``: every built-in stage on the same images with captions and three cycled labels (so
  label_noise has classes), embeddings from a tiny random-weight CLIP (machinery, not judgement).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from curate.config import load_pipeline
from curate.rundir import RunDir
from curate.runner import Runner

REPO = Path(__file__).resolve().parents[1]
COCO = REPO / "examples" / "coco"
PAYLOAD = "<img src=x onerror=alert(1)>"

FULL_STAGES = [
    {"image_quality": {"min_side": 64, "max_aspect": 3.0, "action": {"undecodable": "drop", "default": "review"}}},
    {"text_quality": {"min_words": 2, "action": "review"}},
    {"caption_repair": {"action": "review"}},
    {"exact_dedup": {"on": ["image"], "action": "drop"}},
    {"minhash_dedup": {"field": "text", "threshold": 0.8, "keep": "longest_text", "action": "review"}},
    {"image_dedup": {"hash": "phash", "max_distance": 6, "keep": "largest_image", "action": "review"}},
    {"embed": {"model": "local-dir:CLIP", "device": "cpu", "batch_size": 32, "image": True, "text": True}},
    {"clip_filter": {"keep_top_fraction": 0.9, "action": "review"}},
    {"semantic_dedup": {"field": "image", "clusters": "auto", "eps": 0.01, "keep": "score:clip_score", "action": "review"}},
    {"outliers": {"field": "image", "k": 5, "flag_top_fraction": 0.05, "action": "review"}},
    {"label_noise": {"features": "embed.image_embedding", "classifier": "knn", "folds": 3,
                     "min_examples_per_class": 3, "action": "review"}},
]


def _finished(root: Path) -> bool:
    run = RunDir(root)
    return run.exists() and run.manifest().finished


def demo_run(base: Path) -> Path:
    """The demo pipeline run into ``base/demo/run`` (once per session)."""
    root = base / "demo" / "run"
    if not _finished(root):
        root.parent.mkdir(parents=True, exist_ok=True)
        # the shipped file, with its input and output made absolute (a YAML round trip would turn 'on:' into true)
        text = (REPO / "pipelines" / "demo.yaml").read_text()
        text = re.sub(r"(?m)^(\s+path:).*$", rf"\1 {COCO}", text, count=1)
        text = re.sub(r"(?m)^output:.*$", f"output: {root}", text, count=1)
        pipe = root.parent / "demo.yaml"
        pipe.write_text(text)
        Runner(load_pipeline(pipe), quiet=True).execute()
    return root


def full_run(base: Path, clip_dir: Path) -> Path:
    """Every stage on the COCO example images with labels, into ``base/full/run`` (once per session)."""
    root = base / "full" / "run"
    if not _finished(root):
        tmp = root.parent
        tmp.mkdir(parents=True, exist_ok=True)
        coco = json.loads((COCO / "annotations" / "captions_images.json").read_text())
        captions: dict[int, str] = {}
        for a in coco["annotations"]:
            captions.setdefault(a["image_id"], a["caption"])
        with open(tmp / "items.jsonl", "w", encoding="utf-8") as f:
            for k, im in enumerate(coco["images"]):
                f.write(json.dumps({"image": im["file_name"], "text": captions.get(im["id"]),
                                    "label": ["animal", "food", "street"][k % 3]}) + "\n")
        stages = json.loads(json.dumps(FULL_STAGES).replace("local-dir:CLIP", f"local-dir:{clip_dir}"))
        # the tiny CLIP's features are random: switch label_noise's trust guard off so it flags (machinery only)
        from curate.stages.base import get_stage_class

        fields = get_stage_class("label_noise").Params.model_fields
        guard = {k: 0.0 for k in ("min_kept_accuracy", "min_confidence") if k in fields}
        stages[-1]["label_noise"].update(guard)
        doc = {"name": "full", "input": {"format": "jsonl", "path": str(tmp / "items.jsonl"),
                                         "root": str(COCO / "images"), "shard_size": 16},
               "output": str(root), "workers": 1, "stages": stages}
        pipe = tmp / "full.yaml"
        pipe.write_text(yaml.safe_dump(doc, sort_keys=False))
        Runner(load_pipeline(pipe), quiet=True).execute()
    return root
