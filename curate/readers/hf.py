"""Hugging Face datasets saved with ``save_to_disk`` (needs ``pip install 'curate[hf]'``)."""

from __future__ import annotations

from typing import Iterator

from curate.errors import InputError, require
from curate.readers.base import RawItem, Reader, ReadTask
from curate.readers.manifest import resolve_columns, row_to_item


def _load(path):
    datasets = require("datasets", "hf", "Reading a Hugging Face dataset")
    try:
        ds = datasets.load_from_disk(str(path))
    except FileNotFoundError as exc:
        raise InputError(f"input.path: {path} is not a dataset saved with save_to_disk ({exc})") from None
    if isinstance(ds, datasets.DatasetDict):
        return {name: ds[name] for name in sorted(ds)}
    return {"": ds}


class HfReader(Reader):
    format = "hf"

    def tasks(self) -> Iterator[ReadTask]:
        splits = _load(self.path)
        index = 0
        for split, ds in splits.items():
            cols = resolve_columns(list(ds.column_names), dict(self.cfg.columns), f"dataset {self.path.name}")
            for start in range(0, len(ds), self.cfg.shard_size):
                stop = min(len(ds), start + self.cfg.shard_size)
                yield ReadTask(index=index, payload=(split, start, stop, cols), items=stop - start)
                index += 1

    def read(self, task: ReadTask) -> Iterator[RawItem]:
        import datasets

        split, start, stop, cols = task.payload
        ds = _load(self.path)[split]
        features = ds.features
        if "image" in cols and isinstance(features.get(cols["image"]), datasets.Image):
            ds = ds.cast_column(cols["image"], datasets.Image(decode=False))
        label_names = None
        if "label" in cols and isinstance(features.get(cols["label"]), datasets.ClassLabel):
            label_names = features[cols["label"]].names
        for offset, row in enumerate(ds.select(range(start, stop))):
            if label_names is not None and row.get(cols["label"]) is not None:
                row[cols["label"]] = label_names[row[cols["label"]]]
            source = f"{split + ':' if split else ''}row{start + offset}"
            yield row_to_item(row, cols, self.path, source, max_bytes=self.limits.max_file_bytes)
