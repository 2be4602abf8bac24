"""Export the curated set: items no stage dropped (and, for review items, per the ``pending`` policy).

Which items go out, and with which caption and label, is decided by :mod:`curate.fate` (stage actions,
then reviewer decisions, then the ``pending`` rule), the same function ``status`` and the review app use.

Formats: ``parquet`` (record columns, one file per shard), ``jsonl`` (+ image files), ``imagefolder``
(``<label>/<id>.<ext>``), ``webdataset`` (tar shards of ``<id>.<ext>``, ``.txt``, ``.cls``, ``.json``).
Writes ``export_manifest.json`` beside the data: counts in, kept, dropped per reason, the config.
"""

from __future__ import annotations

import io
import json
import shutil
import sys
import re
import tarfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
from tqdm.auto import tqdm

from curate.errors import CurateError
from curate.fate import PENDING_RULES, iter_fates
from curate.imageinfo import BadImage, probe_image
from curate.rundir import RunDir, atomic_path, write_json, write_table
from curate.shards import read_data_shard

FORMATS = ("parquet", "jsonl", "imagefolder", "webdataset")
_EXT = {"JPEG": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp", "BMP": "bmp", "TIFF": "tif"}


def image_extension(data: bytes) -> str:
    """File extension for encoded image bytes (``bin`` if unknown)."""
    try:
        return _EXT.get(probe_image(data).format, "bin")
    except BadImage:
        return "bin"


def _safe_label(label: str | None) -> str:
    if label is None or label == "":
        return "_unlabelled"
    cleaned = re.sub(r"[^\w.\- ]+", "_", label).strip(". ")
    return cleaned or "_unlabelled"


class _Writer:
    def __init__(self, out: Path):
        self.out = out

    def write(self, shard: int, table: pa.Table) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _ParquetWriter(_Writer):
    def write(self, shard, table):
        write_table(table, self.out / f"part-{shard:05d}.parquet")


class _JsonlWriter(_Writer):
    def __init__(self, out):
        super().__init__(out)
        (out / "images").mkdir(parents=True, exist_ok=True)
        self._f = open(out / "data.jsonl", "w", encoding="utf-8")

    def write(self, shard, table):
        for row in table.to_pylist():
            image = row.pop("image")
            if image is not None:
                name = f"images/{row['id']}.{image_extension(image)}"
                (self.out / name).write_bytes(image)
                row["image"] = name
            if row.get("meta"):
                row["meta"] = json.loads(row["meta"])
            self._f.write(json.dumps(row, ensure_ascii=False) + "\n")

    def close(self):
        self._f.close()


class _ImageFolderWriter(_Writer):
    def write(self, shard, table):
        for row in table.select(["id", "image", "label", "text"]).to_pylist():
            if row["image"] is None:
                continue
            folder = self.out / _safe_label(row["label"])
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{row['id']}.{image_extension(row['image'])}").write_bytes(row["image"])
            if row["text"] is not None:
                (folder / f"{row['id']}.txt").write_text(row["text"], encoding="utf-8")


class _WebDatasetWriter(_Writer):
    def write(self, shard, table):
        with atomic_path(self.out / f"shard-{shard:06d}.tar") as tmp, tarfile.open(tmp, "w") as tf:
            for row in table.to_pylist():
                key = row["id"]
                members = {}
                if row["image"] is not None:
                    members[image_extension(row["image"])] = row["image"]
                if row["text"] is not None:
                    members["txt"] = row["text"].encode("utf-8")
                if row["label"] is not None:
                    members["cls"] = row["label"].encode("utf-8")
                meta = {"source": row["source"], **(json.loads(row["meta"]) if row.get("meta") else {})}
                if "caption_original" in row:
                    meta["caption_original"] = row["caption_original"]
                members["json"] = json.dumps(meta, ensure_ascii=False).encode("utf-8")
                for ext, data in members.items():
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))


_WRITERS = {"parquet": _ParquetWriter, "jsonl": _JsonlWriter, "imagefolder": _ImageFolderWriter,
            "webdataset": _WebDatasetWriter}


def export_run(run_dir: str | Path, out: str | Path, *, fmt: str = "parquet", pending: str = "drop",
               overwrite: bool = False, quiet: bool = False, keep_original_caption: bool = False) -> dict:
    """Export the kept items of a run (:mod:`curate.fate` decides which); returns the export manifest.

    ``pending`` says what happens to items a stage sent to review that nobody decided: ``keep`` or ``drop``.
    Accepted edits (a repaired caption, a suggested label, a reviewer's caption) replace ``text`` /
    ``label``; ``keep_original_caption`` adds the ingested text as ``caption_original``.
    """
    if fmt not in _WRITERS:
        raise CurateError(f"--format: unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if pending not in PENDING_RULES:
        raise CurateError(f"--pending: expected keep or drop, got {pending!r}")
    run = RunDir(run_dir)
    manifest = run.require_finished("export")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise CurateError(f"--out: {out} exists and is not empty; choose another folder or pass --overwrite")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    writer = _WRITERS[fmt](out)
    counts: Counter = Counter()
    dropped_reasons: Counter = Counter()
    bar = tqdm(total=manifest.input.rows, desc=f"export {fmt}", unit="row", file=sys.stderr, disable=quiet)
    try:
        for fates in iter_fates(run, pending=pending):
            counts["in"] += len(fates)
            counts.update(fates.stage_action)
            counts["kept"] += int(fates.kept.sum())
            for i, status in enumerate(fates.status):
                if status is not None:
                    counts[status] += 1
                elif fates.stage_action[i] == "review":
                    counts["pending"] += 1
                if fates.kept[i]:
                    continue
                why, reasons = fates.why[i], fates.causes[i]
                if why == "pending":
                    dropped_reasons.update(f"pending_review:{r}" for r in reasons)
                elif why and why.startswith("reviewer"):
                    dropped_reasons.update([f"rejected_by_reviewer:{r}" for r in reasons] or ["rejected_by_reviewer"])
                else:
                    dropped_reasons.update(reasons)
            table = read_data_shard(run, fates.shard)
            kept = table.filter(pa.array(fates.kept, pa.bool_()))
            original_text = kept.column("text")
            for col, values in fates.replacements.items():
                new = [v for v, k in zip(values, fates.kept) if k]
                counts[f"replaced_{col}"] += sum(v is not None for v in new)
                if any(v is not None for v in new):
                    old = kept.column(col).to_pylist()
                    kept = kept.set_column(kept.schema.get_field_index(col), col,
                                           pa.array([o if v is None else v for v, o in zip(new, old)], pa.string()))
            if keep_original_caption:
                kept = kept.append_column("caption_original", original_text)
            if kept.num_rows:
                writer.write(fates.shard, kept)
            bar.update(len(fates))
    finally:
        writer.close()
        bar.close()
    em = {
        "format": fmt,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run": str(run.root),
        "counts": {"in": counts["in"], "kept": counts["kept"], "dropped": counts["in"] - counts["kept"],
                   "review": counts["review"], "drop": counts["drop"],
                   "quarantined_at_ingest": manifest.input.quarantined},
        "pending_review": pending,
        "review": {"accepted": counts["accepted"], "rejected": counts["rejected"], "pending": counts["pending"],
                   "captions_replaced": counts["replaced_text"], "labels_replaced": counts["replaced_label"],
                   "rule": f"rejected items left out, accepted kept (with their accepted edits); undecided review "
                           f"items: {pending}; unaccepted edits leave the original value"},
        "dropped_by_reason": dict(dropped_reasons.most_common()),
        "config": manifest.config,
    }
    write_json(em, out / "export_manifest.json")
    return em
