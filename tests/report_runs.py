"""Runs the report tests build on, made once per test session (shared by tests/test_report*.py):

* ``demo_run``: ``pipelines/demo.yaml`` on the bundled COCO example (six stages, a quarantined input,
  the ``<img src=x onerror=...>`` caption).
* ``full_run``: every built-in stage on the same images with their captions and a brightness label
  (``bright``/``dark``, a few planted wrong, so label_noise has something to find from pixels), embeddings
  from a tiny random-weight CLIP (machinery, not judgement).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
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
    {"label_noise": {"features": "pixels", "pixel_size": 4, "pixel_mode": "gray", "pca_components": 2,
                     "classifier": "logistic", "folds": 3, "min_examples_per_class": 3, "action": "review"}},
]


#: Images whose brightness label is planted wrong (the label_noise stage should find some of them).
FLIPPED = 4


def _brightness_labels(names: list[str]) -> dict[str, str]:
    """``bright`` / ``dark`` by mean luma (above / below the median; learnable from pixels), with the
    labels of ``FLIPPED`` images swapped."""
    from PIL import Image

    luma = {}
    for n in names:
        try:
            with Image.open(COCO / "images" / n) as im:
                luma[n] = float(np.asarray(im.convert("L").resize((16, 16)), dtype=np.float64).mean())
        except OSError:  # the truncated image: quarantined at ingest anyway
            continue
    median = sorted(luma.values())[len(luma) // 2]
    labels = {n: "bright" if v >= median else "dark" for n, v in luma.items()}
    for n in sorted(luma, key=lambda n: abs(luma[n] - median), reverse=True)[:FLIPPED]:  # clear cases, made wrong
        labels[n] = "dark" if labels[n] == "bright" else "bright"
    return labels


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
        labels = _brightness_labels([im["file_name"] for im in coco["images"]])
        with open(tmp / "items.jsonl", "w", encoding="utf-8") as f:
            for im in coco["images"]:
                f.write(json.dumps({"image": im["file_name"], "text": captions.get(im["id"]),
                                    "label": labels.get(im["file_name"])}) + "\n")
        stages = json.loads(json.dumps(FULL_STAGES).replace("local-dir:CLIP", f"local-dir:{clip_dir}"))
        doc = {"name": "full", "input": {"format": "jsonl", "path": str(tmp / "items.jsonl"),
                                         "root": str(COCO / "images"), "shard_size": 16},
               "output": str(root), "workers": 1, "stages": stages}
        pipe = tmp / "full.yaml"
        pipe.write_text(yaml.safe_dump(doc, sort_keys=False))
        Runner(load_pipeline(pipe), quiet=True).execute()
    return root
