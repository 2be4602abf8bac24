"""Export the curated set: items no stage dropped (and, for review items, per the ``pending`` policy).

Which items go out, and with which caption and label, is decided by :mod:`curate.fate` (stage actions,
then reviewer decisions, then the ``pending`` rule), the same function ``status`` and the review app use.

Formats: ``parquet`` (record columns, one file per shard), ``jsonl`` (+ image files), ``imagefolder``
(``<label>/<id>.<ext>``), ``webdataset`` (tar shards of ``<id>.<ext>``, ``.txt``, ``.cls``, ``.json``),
``hf`` (a Hugging Face ``datasets`` dataset written with ``save_to_disk``: typed features, ``image`` as
``datasets.Image``, ``label`` as ``ClassLabel``; with ``annotations``, every stage's flag, detail and
scores as ``<stage dir>.<column>`` columns). Writes ``export_manifest.json`` beside the data: counts in, kept, dropped per reason, the config.
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
from curate import storage
from curate.rundir import RunDir, atomic_path, write_json, write_table
from curate.shards import read_data_shard

FORMATS = ("parquet", "jsonl", "imagefolder", "webdataset", "hf")
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

    def begin(self, run: RunDir) -> None:
        """Called once before the first shard, with the run being exported."""

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


class _HFWriter(_Writer):
    """A ``datasets`` dataset, via ``save_to_disk``: kept shards are spooled to Parquet in the features'
    storage types, then loaded (memory-mapped, not into RAM) and saved, so memory stays bounded.

    ``label`` becomes a ``ClassLabel`` over every label of the run (given, suggested by a stage or chosen by a
    reviewer), so class ids do not depend on which items were kept; ``image`` becomes ``datasets.Image``."""

    SPOOL = ".hf-spool"

    def __init__(self, out, *, annotations: bool = False, quiet: bool = False):
        super().__init__(out)
        self.quiet = quiet
        try:
            import datasets  # noqa: F401
        except ImportError:
            raise CurateError("--format hf needs the 'hf' extra (the datasets package); "
                              "install it with: pip install 'curate[hf]'") from None
        self.annotations = annotations
        self.spool = out / self.SPOOL
        self.files: list[Path] = []
        self.features = None
        self.run: RunDir | None = None

    def begin(self, run):
        self.run = run
        self.stages = run.finished_stages()
        self.class_names = _run_labels(run, self.stages)
        self.has_images = _has_images(run)

    def _annotation_columns(self, shard: int, table: pa.Table) -> pa.Table:
        import pyarrow.compute as pc

        from curate.shards import read_annotation_shard

        for entry in self.stages:
            scores = [s.column for s in entry.outputs.scores] + [c.name for c in entry.outputs.columns if c.role == "score"]
            st = read_annotation_shard(self.run, entry, shard, ["id", "flag", "detail", *dict.fromkeys(scores)])
            rows = pc.index_in(table.column("id"), value_set=st.column("id"))
            for col in st.column_names[1:]:
                table = table.append_column(f"{entry.dir}.{col}", st.column(col).take(rows))
        return table

    def _features(self, schema: pa.Schema):
        import datasets

        features = datasets.Features.from_arrow_schema(schema)
        if "image" in features:
            if self.has_images:
                features["image"] = datasets.Image()
            else:
                del features["image"]
        if "label" in features and self.class_names:
            features["label"] = datasets.ClassLabel(names=self.class_names)
        return features

    def write(self, shard, table):
        from datasets.table import table_cast

        if self.annotations:
            table = self._annotation_columns(shard, table)
        if self.features is None:
            self.features = self._features(table.schema)
        if "image" not in self.features and "image" in table.column_names:
            table = table.drop_columns(["image"])
        path = self.spool / f"part-{shard:05d}.parquet"
        write_table(table_cast(table, self.features.arrow_schema), path)
        self.files.append(path)

    def close(self):
        import datasets
        from datasets.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

        was_disabled = are_progress_bars_disabled()
        if self.quiet:
            disable_progress_bars()
        try:
            if self.run is None:
                return
            if self.features is None:  # nothing kept: an empty dataset with the record's features
                empty = read_data_shard(self.run, 0).schema.empty_table() if self.run.data_shards() else pa.table({})
                if self.annotations:
                    empty = self._annotation_columns(0, empty)
                self.features = self._features(empty.schema)
                if "image" not in self.features and "image" in empty.column_names:
                    empty = empty.drop_columns(["image"])
                from datasets.table import table_cast

                ds = datasets.Dataset(table_cast(empty, self.features.arrow_schema))
            else:
                ds = datasets.Dataset.from_parquet([str(f) for f in self.files], features=self.features, split="train",
                                                   cache_dir=str(self.spool / "cache"), keep_in_memory=False)
            # one shard at least: an empty dataset saved with none cannot be loaded back
            ds.save_to_disk(str(self.out), num_shards=1 if len(ds) == 0 else None)
            del ds
        finally:
            shutil.rmtree(self.spool, ignore_errors=True)
            if self.quiet and not was_disabled:
                enable_progress_bars()


def _run_labels(run: RunDir, stages) -> list[str]:
    """Every label of the run, sorted: given ones, labels stages suggest, labels reviewers chose."""
    from curate.fate import load_decisions
    from curate.shards import read_annotation_shard

    labels: set[str] = set()
    for i, p in enumerate(run.data_shards()):
        t = read_data_shard(run, i, ["label"])
        if "label" in t.column_names:
            labels.update(v for v in t.column("label").to_pylist() if v is not None)
        for entry in stages:
            col = entry.outputs.column_with_role("suggested_label")
            if col:
                st = read_annotation_shard(run, entry, i, [col])
                if col in st.column_names:
                    labels.update(str(v) for v in st.column(col).to_pylist() if v is not None)
    labels.update(d.label for d in load_decisions(run).values() if d.label is not None)
    return sorted(labels)


def _has_images(run: RunDir) -> bool:
    """Whether any record has image bytes (from the Parquet footers' null counts, without reading images)."""
    import pyarrow.parquet as pq

    for p in run.data_shards():
        meta = pq.ParquetFile(p).metadata
        names = meta.schema.names
        if "image" not in names:
            continue
        j = names.index("image")
        for g in range(meta.num_row_groups):
            col = meta.row_group(g).column(j)
            stats = col.statistics
            if stats is None or not stats.has_null_count or stats.null_count < meta.row_group(g).num_rows:
                return True
    return False


_WRITERS = {"parquet": _ParquetWriter, "jsonl": _JsonlWriter, "imagefolder": _ImageFolderWriter,
            "webdataset": _WebDatasetWriter, "hf": _HFWriter}


def export_run(run_dir: str | Path, out: str | Path, *, fmt: str = "parquet", pending: str = "drop",
               overwrite: bool = False, quiet: bool = False, keep_original_caption: bool = False,
               annotations: bool = False) -> dict:
    """Export the kept items of a run (:mod:`curate.fate` decides which); returns the export manifest.

    ``pending`` says what happens to items a stage sent to review that nobody decided: ``keep`` or ``drop``.
    Accepted edits (a repaired caption, a suggested label, a reviewer's caption) replace ``text`` /
    ``label``; ``keep_original_caption`` adds the ingested text as ``caption_original``.
    """
    if fmt not in _WRITERS:
        raise CurateError(f"--format: unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if annotations and fmt != "hf":
        raise CurateError("--annotations: only --format hf writes the stages' flags and scores as columns")
    if pending not in PENDING_RULES:
        raise CurateError(f"--pending: expected keep or drop, got {pending!r}")
    run = RunDir(run_dir)
    manifest = run.require_finished("export")
    out = storage.location(out)
    if isinstance(out, storage.RemotePath) and fmt != "parquet":
        raise CurateError(f"--out: {out}: only --format parquet writes to object storage; export {fmt} to a local "
                          "folder and upload it (e.g. 'aws s3 sync')")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise CurateError(f"--out: {out} exists and is not empty; choose another folder or pass --overwrite")
        storage.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    writer = _HFWriter(out, annotations=annotations, quiet=quiet) if fmt == "hf" else _WRITERS[fmt](out)
    writer.begin(run)
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
