"""CSV, JSONL and Parquet manifests: one row per item, columns mapped to record fields in YAML.

``input.columns`` maps record fields to manifest columns, e.g. ``{image: file_name, text: caption,
label: category}``. Without a mapping, columns named ``image``/``text``/``label`` (or ``caption``,
``file_name``, ``path``) are used. An image column holds a path (resolved inside ``input.root``, by default
the manifest's folder; paths that escape it are refused) or, in Parquet, the bytes themselves. All
other columns are carried in ``meta``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator

from curate import storage
from curate.errors import InputError
from curate.readers.base import RawItem, Reader, ReadTask, read_file_item
from curate.readers.limits import DEFAULT_MAX_FILE_BYTES

_DEFAULTS = {
    "image": ("image", "file_name", "filename", "path", "image_path", "filepath", "img"),
    "text": ("text", "caption", "sentence", "document", "content"),
    "label": ("label", "class", "category", "target"),
}


def resolve_columns(available: list[str], mapping: dict[str, str], where: str) -> dict[str, str]:
    """Map record fields to source columns; unknown names are errors listing the real columns."""
    bad_keys = set(mapping) - {"image", "text", "label", "source"}
    if bad_keys:
        raise InputError(f"input.columns: unknown record field {sorted(bad_keys)[0]!r}; allowed: image, text, label, source")
    out = {}
    for field_name, col in mapping.items():
        if col not in available:
            raise InputError(f"input.columns.{field_name}: column {col!r} is not in {where}; its columns: {', '.join(available)}")
        out[field_name] = col
    for field_name, names in _DEFAULTS.items():
        if field_name not in out:
            for n in names:
                if n in available:
                    out[field_name] = n
                    break
    if "image" not in out and "text" not in out:
        raise InputError(f"{where}: found no image or text column; map one with input.columns (its columns: {', '.join(available)})")
    return out


def row_to_item(row: dict[str, Any], cols: dict[str, str], root: Path, source: str, *,
                max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> RawItem:
    """Turn one manifest row into a RawItem (reads the image file if the column is a path)."""
    used = set(cols.values())
    meta = {k: v for k, v in row.items() if k not in used} or None
    if "source" in cols and row.get(cols["source"]) is not None:
        source = str(row[cols["source"]])
    label = row.get(cols["label"]) if "label" in cols else None
    text = row.get(cols["text"]) if "text" in cols else None
    if text is not None and not isinstance(text, (str, bytes)):
        text = str(text)
    if isinstance(text, str):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes (surrogateescape) or lone surrogates: quarantined later
            try:
                text = text.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                text = text.encode("utf-8", "surrogatepass")
    item = RawItem(source=source, text=text, label=None if label is None else str(label), meta=meta, has_image="image" in cols)
    if "image" in cols:
        value = row.get(cols["image"])
        if isinstance(value, dict):  # Hugging Face style {"bytes": ..., "path": ...}
            value = value.get("bytes") or value.get("path")
        if value is None or value == "":
            item.error = ("missing_file", f"no value in image column {cols['image']!r}")
        elif isinstance(value, (bytes, bytearray)):
            item.image = bytes(value)
        else:
            item.source = str(value) if "source" not in cols else item.source
            item.image, item.error = read_file_item(root, str(value), max_bytes=max_bytes)
    return item


class _ManifestReader(Reader):
    def __init__(self, cfg):
        super().__init__(cfg)
        if not self.path.is_file():
            raise InputError(f"input.path: {cfg.format} input must be a manifest file, got the folder {self.path}")
        self.root = Path(cfg.root).expanduser() if cfg.root else self.path.parent

    def fingerprint_paths(self) -> list[Path]:
        return [self.path]

    def _rows(self) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
        """Yield (source, row or None, error) in file order."""
        raise NotImplementedError

    def _columns(self) -> list[str]:
        raise NotImplementedError

    def tasks(self) -> Iterator[ReadTask]:
        cols = resolve_columns(self._columns(), dict(self.cfg.columns), str(self.path.name))
        batch: list = []
        index = 0
        for entry in self._rows():
            batch.append(entry)
            if len(batch) >= self.cfg.shard_size:
                yield ReadTask(index=index, payload=(cols, batch), items=len(batch))
                index, batch = index + 1, []
        if batch:
            yield ReadTask(index=index, payload=(cols, batch), items=len(batch))

    def read(self, task: ReadTask) -> Iterator[RawItem]:
        cols, rows = task.payload
        for source, row, error in rows:
            if error is not None:
                yield RawItem(source=source, error=("bad_row", error))
            else:
                yield row_to_item(row, cols, self.root, source, max_bytes=self.limits.max_file_bytes)


class CsvReader(_ManifestReader):
    format = "csv"

    def _open(self):
        return open(self.path, encoding="utf-8", errors="surrogateescape", newline="")

    def _columns(self) -> list[str]:
        csv.field_size_limit(self.limits.max_line_bytes)
        with self._open() as f:
            try:
                header = next(csv.reader(f), None)
            except csv.Error as exc:
                raise InputError(f"{self.path}: the CSV header cannot be read ({exc})") from None
        if not header:
            raise InputError(f"{self.path}: empty CSV (no header row)")
        return header

    def _rows(self):
        csv.field_size_limit(self.limits.max_line_bytes)
        with self._open() as f:
            reader = csv.reader(f)
            header = next(reader, None) or []
            i = 0
            while True:
                i += 1
                source = f"{self.path.name}:row{i}"
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:  # e.g. a field over the limit: the reader resumes at the next line
                    yield source, None, f"{exc} (input.max_line_bytes = {self.limits.max_line_bytes:,})"
                    continue
                if not values:
                    i -= 1  # blank lines are skipped, as csv.DictReader does
                    continue
                if len(values) > len(header):
                    yield source, None, f"row has {len(values)} fields, header has {len(header)}"
                    continue
                yield source, dict(zip(header, values + [None] * (len(header) - len(values)))), None


class JsonlReader(_ManifestReader):
    format = "jsonl"

    def _columns(self) -> list[str]:
        keys: dict[str, None] = {}
        with open(self.path, "rb") as f:
            for n, line in enumerate(_lines(f, self.limits.max_line_bytes)):
                if n >= 1000:
                    break
                if line is None:
                    continue
                try:
                    obj = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                    continue
                if isinstance(obj, dict):
                    keys.update(dict.fromkeys(obj))
        if not keys:
            raise InputError(f"{self.path}: no JSON objects found in the first 1000 lines")
        return list(keys)

    def _rows(self):
        limit = self.limits.max_line_bytes
        with open(self.path, "rb") as f:
            for i, line in enumerate(_lines(f, limit)):
                source = f"{self.path.name}:line{i + 1}"
                if line is None:
                    yield source, None, f"line is longer than {limit:,} bytes (input.max_line_bytes)"
                    continue
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line.decode("utf-8"))
                except UnicodeDecodeError:
                    yield source, None, "line is not valid UTF-8"
                    continue
                except json.JSONDecodeError as exc:
                    yield source, None, f"not valid JSON: {exc.msg} at column {exc.colno}"
                    continue
                except RecursionError:
                    yield source, None, "JSON nested too deeply"
                    continue
                if not isinstance(obj, dict):
                    yield source, None, f"expected a JSON object, got {type(obj).__name__}"
                    continue
                yield source, obj, None


def _lines(f, limit: int) -> Iterator[bytes | None]:
    """The lines of a binary file; a line over ``limit`` bytes is skipped (read in pieces) as None."""
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = f.readline(1 << 20)
            yield None
            continue
        yield line


class ParquetReader(_ManifestReader):
    format = "parquet"

    def _columns(self) -> list[str]:
        try:
            return storage.parquet_file(self.path).schema_arrow.names
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise InputError(f"{self.path}: not a readable Parquet file ({exc})") from None

    def _rows(self):
        pf = storage.parquet_file(self.path)
        i = 0
        for batch in pf.iter_batches(batch_size=max(1, min(self.cfg.shard_size, 4096))):
            for row in batch.to_pylist():
                yield f"{self.path.name}:row{i}", row, None
                i += 1
