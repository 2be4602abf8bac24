"""CSV, JSONL and Parquet manifests: one row per item, columns mapped to record fields in YAML.

``input.columns`` maps record fields to manifest columns, e.g. ``{image: file_name, text: caption,
label: category}``. Without a mapping, columns named ``image``/``text``/``label`` (or ``caption``,
``file_name``, ``path``) are used. An image column holds a path (resolved inside ``input.root``, by default
the manifest's folder; paths that escape it are refused) or, in Parquet, the bytes themselves. All
other columns are carried in ``meta``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pyarrow.compute as pc

from curate import storage
from curate.errors import InputError
from curate.readers.base import RawItem, Reader, ReadTask, ShardResult, read_file_item
from curate.readers.columnar import build_text_shard, row_sources
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

    def _columns(self) -> list[str]:
        raise NotImplementedError

    def _cols(self) -> dict[str, str]:
        return resolve_columns(self._columns(), dict(self.cfg.columns), str(self.path.name))

    def tasks(self) -> Iterator[ReadTask]:
        """Row ranges (Parquet) or byte ranges (JSONL, CSV): workers read their rows themselves, so
        rows never pass through the driver."""
        raise NotImplementedError

    def _task_rows(self, task: ReadTask) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
        """``(source, row or None, error)`` of the task's rows, in file order (the per-row path)."""
        raise NotImplementedError

    def read(self, task: ReadTask) -> Iterator[RawItem]:
        cols = task.payload[0]
        for source, row, error in self._task_rows(task):
            if error is not None:
                yield RawItem(source=source, error=("bad_row", error))
            else:
                yield row_to_item(row, cols, self.root, source, max_bytes=self.limits.max_file_bytes)

    def _columnar(self, task: ReadTask) -> ShardResult | None:
        """The task's shard built vectorised (:mod:`curate.readers.columnar`), or None."""
        return None

    def build(self, task: ReadTask) -> ShardResult:
        return self._columnar(task) or super().build(task)


class CsvReader(_ManifestReader):
    format = "csv"

    def _open(self):
        return io.TextIOWrapper(self.path.open("rb"), encoding="utf-8", errors="surrogateescape", newline="")

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

    def _records(self, f, header: list[str], first: int):
        """``(source, row or None, error)`` of the records of text stream ``f``, numbered from ``first``."""
        reader = csv.reader(f)
        i = first - 1
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

    def tasks(self) -> Iterator[ReadTask]:
        """One task per ``shard_size`` records, as a byte range: the driver parses the file once to find
        where records end (a quoted field may span lines) and holds no row."""
        cols = self._cols()
        csv.field_size_limit(self.limits.max_line_bytes)
        pos = 0

        def lines(f):
            nonlocal pos
            for line in f:
                pos += len(line.encode("utf-8", "surrogateescape"))  # newline="": nothing translated
                yield line

        with self._open() as f:
            it = lines(f)
            reader = csv.reader(it)
            try:
                header = next(reader, None) or []
            except csv.Error:
                header = []
            index, start, first, count, counted = 0, pos, 1, 0, 0
            for _ in self._records(it, header, 1):  # the workers' loop, continuing the same lines
                count += 1
                if count == self.cfg.shard_size:
                    yield ReadTask(index=index, payload=(cols, header, start, pos, first), items=count)
                    counted += count
                    index, start, first, count = index + 1, pos, 1 + counted, 0
        if count:
            yield ReadTask(index=index, payload=(cols, header, start, pos, first), items=count)

    def limit_task(self, task: ReadTask, n: int) -> ReadTask:
        if n >= task.items:
            return task
        cols, header, start, end, first = task.payload
        return ReadTask(index=task.index, payload=(cols, header, start, self._end_after(task, n), first), items=n)

    def _end_after(self, task: ReadTask, n: int) -> int:
        """Byte offset after the first ``n`` records of ``task``."""
        _, header, start, end, first = task.payload
        pos = start

        def lines(f):
            nonlocal pos
            for line in f:
                pos += len(line.encode("utf-8", "surrogateescape"))
                yield line

        for k, _ in enumerate(self._records(lines(self._text(task)), header, first), start=1):
            if k == n:
                return pos
        return end

    def _text(self, task: ReadTask):
        _, _, start, end, _ = task.payload
        with self.path.open("rb") as f:
            f.seek(start)
            data = f.read(end - start)
        return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="surrogateescape", newline="")

    def _task_rows(self, task: ReadTask):
        csv.field_size_limit(self.limits.max_line_bytes)
        _, header, _, _, first = task.payload
        return self._records(self._text(task), header, first)

    def _columnar(self, task: ReadTask) -> ShardResult | None:
        """pyarrow's CSV parser, for ranges without quote characters or NULs (where Python's csv
        rules and Arrow's cannot differ) and with all fields present."""
        import pyarrow as pa
        import pyarrow.csv as pcsv

        cols, header, start, end, first = task.payload
        with self.path.open("rb") as f:
            f.seek(start)
            data = f.read(end - start)
        if not data or b'"' in data or b"\0" in data or len(set(header)) != len(header) or not header:
            return None
        try:
            table = pcsv.read_csv(
                io.BytesIO(data),
                read_options=pcsv.ReadOptions(column_names=header, use_threads=False, block_size=len(data) + 1),
                convert_options=pcsv.ConvertOptions(column_types={h: pa.string() for h in header},
                                                    strings_can_be_null=False, quoted_strings_can_be_null=False))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None  # a short or long row, invalid UTF-8, ...: the per-row path says which
        if table.num_rows != task.items or any(
                (pc.max(pc.binary_length(table.column(h))).as_py() or 0) > self.limits.max_line_bytes for h in header):
            return None
        return build_text_shard(table, cols, row_sources(f"{self.path.name}:row", first, table.num_rows),
                                limits=self.limits)


class JsonlReader(_ManifestReader):
    format = "jsonl"

    def _columns(self) -> list[str]:
        keys: dict[str, None] = {}
        with self.path.open("rb") as f:
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

    def tasks(self) -> Iterator[ReadTask]:
        """One task per ``shard_size`` lines: a byte range of the file, found by counting newlines in
        blocks (the driver holds one block, never a row)."""
        cols = self._cols()
        size = self.path.stat().st_size
        index, start, line, in_task, pos, last = 0, 0, 0, 0, 0, b"\n"
        with self.path.open("rb") as f:
            while pos < size:
                block = f.read(16 << 20)
                if not block:
                    break
                last = block[-1:]
                ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10) + pos + 1
                pos += len(block)
                while in_task + len(ends) >= self.cfg.shard_size:
                    take = self.cfg.shard_size - in_task
                    end = int(ends[take - 1])
                    yield ReadTask(index=index, payload=(cols, start, end, line), items=self.cfg.shard_size)
                    index, start, line, in_task, ends = index + 1, end, line + self.cfg.shard_size, 0, ends[take:]
                in_task += len(ends)
        if start < size:
            yield ReadTask(index=index, payload=(cols, start, size, line), items=in_task + (last != b"\n"))

    def limit_task(self, task: ReadTask, n: int) -> ReadTask:
        cols, start, end, line = task.payload
        if n < task.items:
            end = start + int(np.flatnonzero(np.frombuffer(self._bytes(task), dtype=np.uint8) == 10)[n - 1]) + 1
        return ReadTask(index=task.index, payload=(cols, start, end, line), items=min(n, task.items))

    def _bytes(self, task: ReadTask) -> bytes:
        _, start, end, _ = task.payload
        with self.path.open("rb") as f:
            f.seek(start)
            return f.read(end - start)

    def _task_rows(self, task: ReadTask):
        limit = self.limits.max_line_bytes
        first = task.payload[3]
        for i, line in enumerate(_lines(io.BytesIO(self._bytes(task)), limit)):
            source = f"{self.path.name}:line{first + i + 1}"
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

    def _columnar(self, task: ReadTask) -> ShardResult | None:
        import pyarrow as pa
        import pyarrow.json as pj

        cols, _, _, first = task.payload
        data = self._bytes(task)
        if not data:
            return None
        arr = np.frombuffer(data, dtype=np.uint8)
        starts = np.concatenate([[0], np.flatnonzero(arr == 10) + 1])
        starts = starts[starts < len(arr)]
        lengths = np.diff(np.append(starts, len(arr)))
        if lengths.max() > self.limits.max_line_bytes:
            return None
        nonblank = ~_WHITESPACE[arr[starts]]  # a line that starts with a non-space is not blank
        for i in np.flatnonzero(~nonblank).tolist():  # the few that start with a space: look at them
            nonblank[i] = bool(data[starts[i]:starts[i] + lengths[i]].strip())
        lines = first + np.flatnonzero(nonblank)
        try:
            table = pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(use_threads=False,
                                                                                block_size=len(data) + 1))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None  # a bad line, mixed types, ...: the per-row path says which
        if table.num_rows != len(lines) or any(c not in table.column_names for c in cols.values()):
            return None
        sources = pc.binary_join_element_wise(f"{self.path.name}:line", pa.array(lines + 1).cast(pa.string()), "")
        return build_text_shard(table, cols, sources, limits=self.limits, nulls_in_meta=False)


_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[np.frombuffer(b" \t\n\r\x0b\x0c", dtype=np.uint8)] = True  # what bytes.strip() removes


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

    def tasks(self) -> Iterator[ReadTask]:
        """One task per ``shard_size`` rows, as a row range: workers read their rows themselves."""
        cols = self._cols()
        total = storage.parquet_file(self.path).metadata.num_rows
        for index, start in enumerate(range(0, total, self.cfg.shard_size)):
            stop = min(total, start + self.cfg.shard_size)
            yield ReadTask(index=index, payload=(cols, start, stop), items=stop - start)

    def limit_task(self, task: ReadTask, n: int) -> ReadTask:
        cols, start, stop = task.payload
        return ReadTask(index=task.index, payload=(cols, start, min(stop, start + n)), items=min(n, task.items))

    def _table(self, task: ReadTask):
        """The task's rows: its row groups streamed in batches up to the last row it needs."""
        import pyarrow as pa

        _, start, stop = task.payload
        pf = storage.parquet_file(self.path)
        meta = pf.metadata
        bounds = np.cumsum([0] + [meta.row_group(i).num_rows for i in range(meta.num_row_groups)])
        groups = [i for i in range(meta.num_row_groups) if bounds[i] < stop and bounds[i + 1] > start]
        batches, pos = [], int(bounds[groups[0]]) if groups else 0
        for batch in (pf.iter_batches(batch_size=4096, row_groups=groups, use_threads=False) if groups else ()):
            lo, hi = max(start, pos), min(stop, pos + batch.num_rows)
            if hi > lo:
                batches.append(batch.slice(lo - pos, hi - lo))
            pos += batch.num_rows
            if pos >= stop:
                break
        return pa.Table.from_batches(batches, schema=pf.schema_arrow)

    def _task_rows(self, task: ReadTask):
        start = task.payload[1]
        for i, row in enumerate(self._table(task).to_pylist()):
            yield f"{self.path.name}:row{start + i}", row, None

    def _columnar(self, task: ReadTask) -> ShardResult | None:
        cols, start, stop = task.payload
        return build_text_shard(self._table(task), cols, row_sources(f"{self.path.name}:row", start, stop - start),
                                limits=self.limits)
