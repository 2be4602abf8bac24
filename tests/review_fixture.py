"""A synthetic run directory for the review tests and benchmark: data shards, five stages' shards and
a manifest, written with the ``curate.rundir`` helpers (no models, no network, a fraction of a second).

Stage layout (every stage writes ``flag``/``action``/``detail`` like a real one):

* ``00-text_quality``: ``too_short`` (review) when the caption has under 3 words; score ``non_letter_share``.
* ``01-near_dup``: items ``i % 10 == 1`` are near-duplicates (review) of item ``i - 1`` (as the dedup
  stages write them): ``cluster_id``, ``is_representative``, score ``similarity``.
* ``02-label_noise``: items ``i % 7 == 3`` get ``label_issue`` (review), ``suggested_label``, ``label_quality``.
* ``03-caption_repair``: items ``i % 11 == 5`` get ``mojibake`` (review) and a ``repaired_caption``.
* ``04-image_quality``: items ``i % 13 == 7`` are ``too_dark`` (drop); score ``luma_mean``.
"""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
from PIL import Image

from curate.record import RECORD_SCHEMA, content_id
from curate.rundir import RunDir, shard_name, write_table

LABELS = ["cat", "dog", "frog", "ship"]
HTML_CAPTION = "<img src=x onerror=alert(1)> <b>bold</b> *not italic*"


def _png(i: int) -> bytes:
    im = Image.new("RGB", (48, 40), ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _caption(i: int) -> str:
    if i == 3:
        return HTML_CAPTION  # flagged label_issue, so it is in the queue
    if i % 6 == 0:
        return f"dog {i}"  # two words: too_short
    return f"a photo number {i} of a small {LABELS[i % 4]} on grass"


def make_review_run(root: Path, n: int = 120, shard_size: int = 50, images: list[bytes] | None = None,
                    all_flagged: bool = False) -> RunDir:
    """Write a finished run of ``n`` items to ``root``; ``images`` (cycled) replaces the generated PNGs.

    ``all_flagged``: ``00-text_quality`` flags every item (for the benchmark's 100,000 flagged items)."""
    run = RunDir(root)
    stages = {"00-text_quality": [], "01-near_dup": [], "02-label_noise": [], "03-caption_repair": [], "04-image_quality": []}
    ids_all: list[str] = []
    n_shards = (n + shard_size - 1) // shard_size
    for s in range(n_shards):
        idx = list(range(s * shard_size, min(n, (s + 1) * shard_size)))
        recs = {k: [] for k in RECORD_SCHEMA.names}
        for i in idx:
            img = images[i % len(images)] if images else _png(i)
            text, label, source = _caption(i), LABELS[i % 4], f"item-{i:06d}.png"
            recs["id"].append(content_id(source, img, text, label))
            recs["source"].append(source)
            recs["image"].append(img)
            recs["text"].append(text)
            recs["label"].append(label)
            recs["width"].append(48)
            recs["height"].append(40)
            recs["meta"].append(None)
        ids_all.extend(recs["id"])
        ids = pa.array(recs["id"], pa.string())
        write_table(pa.Table.from_pydict(recs, schema=RECORD_SCHEMA), run.data_shard(s))

        def table(cols: dict, flags: list, actions: list, details: list) -> pa.Table:
            data = {"id": ids, **cols, "flag": pa.array(flags, pa.string()),
                    "action": pa.array(actions, pa.string()), "detail": pa.array(details, pa.string())}
            return pa.table(data)

        short = [all_flagged or len(_caption(i).split()) < 3 for i in idx]
        write_table(table({"n_words": pa.array([len(_caption(i).split()) for i in idx], pa.int32()),
                           "non_letter_share": pa.array([(i % 17) / 17 for i in idx], pa.float32())},
                          ["too_short" if f else None for f in short], ["review" if f else None for f in short],
                          [(f"{len(_caption(i).split())} words, fewer than 3" if len(_caption(i).split()) < 3
                           else "flagged for the benchmark") if f else None for i, f in zip(idx, short)]),
                    run.stage_dir("00-text_quality") / shard_name(s))
        dup = [i % 10 == 1 for i in idx]
        write_table(table({"cluster_id": pa.array([f"c{i // 10}" if i % 10 in (0, 1) else None for i in idx], pa.string()),
                           "is_representative": pa.array([i % 10 == 0 for i in idx], pa.bool_()),
                           "similarity": pa.array([0.9 + (i % 10) / 100 if d else None for i, d in zip(idx, dup)], pa.float32())},
                          ["near_duplicate" if d else None for d in dup], ["review" if d else None for d in dup],
                          [f"near-duplicate of {ids_all[i - 1][:8]} (Jaccard 0.91)" if d else None for i, d in zip(idx, dup)]),
                    run.stage_dir("01-near_dup") / shard_name(s))
        lab = [i % 7 == 3 for i in idx]
        write_table(table({"suggested_label": pa.array([LABELS[(i + 1) % 4] if f else None for i, f in zip(idx, lab)], pa.string()),
                           "label_quality": pa.array([(i % 100) / 100 for i in idx], pa.float32())},
                          ["label_issue" if f else None for f in lab], ["review" if f else None for f in lab],
                          [f"labelled {LABELS[i % 4]}, model says {LABELS[(i + 1) % 4]} (p=0.97)" if f else None
                           for i, f in zip(idx, lab)]),
                    run.stage_dir("02-label_noise") / shard_name(s))
        moj = [i % 11 == 5 for i in idx]
        write_table(table({"repaired_caption": pa.array([_caption(i).replace("photo", "picture") if f else None
                                                         for i, f in zip(idx, moj)], pa.string())},
                          ["mojibake" if f else None for f in moj], ["review" if f else None for f in moj],
                          ["caption looks garbled; repaired" if f else None for f in moj]),
                    run.stage_dir("03-caption_repair") / shard_name(s))
        dark = [i % 13 == 7 for i in idx]
        write_table(table({"luma_mean": pa.array([float(i % 255) for i in idx], pa.float32())},
                          ["too_dark" if f else None for f in dark], ["drop" if f else None for f in dark],
                          ["mean luma 7 < 15" if f else None for f in dark]),
                    run.stage_dir("04-image_quality") / shard_name(s))
    cols = {"00-text_quality": ["n_words", "non_letter_share"], "01-near_dup": ["cluster_id", "is_representative", "similarity"],
            "02-label_noise": ["suggested_label", "label_quality"], "03-caption_repair": ["repaired_caption"],
            "04-image_quality": ["luma_mean"]}
    params = {"00-text_quality": {"min_words": 3, "action": "review"}, "01-near_dup": {"threshold": 0.9, "action": "review"},
              "02-label_noise": {"min_quality": 0.5, "action": "review"}, "03-caption_repair": {"action": "review"},
              "04-image_quality": {"dark_below": 15.0, "action": "drop"}}
    manifest = {
        "name": "review-test", "status": "done", "pipeline_file": None,
        "config": {"name": "review-test", "input": {"format": "parquet", "path": "x.parquet"}, "output": str(root),
                   "stages": [{d.split("-", 1)[1]: params[d]} for d in stages]},
        "input": {"status": "done", "fingerprint": f"synthetic-{n}", "shards": n_shards, "rows": n, "quarantined": 0},
        "stages": [{"index": k, "name": d.split("-", 1)[1], "dir": d, "fingerprint": f"fp{k}-{n}", "status": "done",
                    "kind": "map", "columns": cols[d], "params": params[d], "finished": "2026-01-01T00:00:00+00:00"}
                   for k, d in enumerate(stages)],
    }
    run.save_manifest(manifest)
    return run


def expected_actions(n: int) -> dict[int, str]:
    """Final action per item index (only flagged items)."""
    out = {}
    for i in range(n):
        review = len(_caption(i).split()) < 3 or i % 10 == 1 or i % 7 == 3 or (i % 11 == 5)
        if i % 13 == 7:
            out[i] = "drop"
        elif review:
            out[i] = "review"
    return out


def item_ids(run: RunDir) -> list[str]:
    import pyarrow.parquet as pq

    return [i for p in run.data_shards() for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()]


__all__ = ["HTML_CAPTION", "LABELS", "expected_actions", "item_ids", "make_review_run"]
