"""Reader interface and the shared mechanics of turning raw items into record shards.

A reader plans *tasks* (picklable, deterministic order; one task becomes one data shard) and reads
each task into :class:`RawItem` objects. :func:`build_shard` turns those into the record table and the
quarantine table; it is the same for every format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

import pyarrow as pa

from curate import storage
from curate.errors import InputError
from curate.imageinfo import BadImage, probe_image
from curate.readers.confine import confine, read_inside, walk
from curate.readers.limits import DEFAULT_MAX_FILE_BYTES, Limits
from curate.record import QUARANTINE_SCHEMA, RECORD_SCHEMA, content_id


@dataclass
class RawItem:
    """One item as a reader found it. ``error`` = (reason, detail) sends it to quarantine."""

    source: str
    image: bytes | None = None
    text: str | bytes | None = None
    label: str | None = None
    meta: dict[str, Any] | None = None
    error: tuple[str, str] | None = None
    has_image: bool = True  # False for text-only formats (no image expected)


@dataclass
class ReadTask:
    """A unit of reading that becomes one data shard."""

    index: int
    payload: Any = None
    items: int = 0  # items expected (for progress bars); 0 = unknown


class Reader:
    """Base class of the input readers."""

    format: ClassVar[str]

    def __init__(self, cfg):
        self.cfg = cfg
        self.path = storage.location(cfg.path).expanduser()  # a URL for inputs on object storage
        self.limits = Limits.of(cfg)
        if not self.path.exists() and not self._is_pattern():
            raise InputError(f"input.path: {cfg.path!r} does not exist (resolved to {self.path.absolute()})")

    def _is_pattern(self) -> bool:
        return False

    def tasks(self) -> Iterator[ReadTask]:
        """Plan the read; deterministic for the same input."""
        raise NotImplementedError

    def read(self, task: ReadTask) -> Iterator[RawItem]:
        raise NotImplementedError

    def build(self, task: ReadTask) -> "ShardResult":
        """The task's record and quarantine tables (in the worker; readers may vectorise it)."""
        return build_shard(self.read(task), limits=self.limits)

    def limit_task(self, task: ReadTask, n: int) -> ReadTask:
        """``task`` cut to its first ``n`` items (``input.limit``); tasks whose payload is a list of
        items are cut here, other readers cut their own."""
        if isinstance(task.payload, list) and n < len(task.payload):
            return ReadTask(index=task.index, payload=task.payload[:n], items=n)
        return task

    def fingerprint_paths(self) -> list[Path]:
        """Files whose (name, size, mtime) identify the input."""
        if self.path.is_file():
            return [self.path]
        return [self.path / rel for rel in walk(self.path)]


def safe_join(root: Path, rel: str) -> Path:
    """Resolve ``rel`` inside ``root`` (see :func:`~curate.readers.confine.confine`)."""
    return confine(root, rel)


def read_file_item(root: Path, rel: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> tuple[bytes | None, tuple[str, str] | None]:
    """Read a file named in a manifest, confined to ``root``. Returns (bytes, error); no bytes on error."""
    try:
        return read_inside(root, rel, max_bytes=max_bytes), None
    except BadImage as exc:
        return None, (exc.reason, exc.detail)


def chunked(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass
class ShardResult:
    records: pa.Table
    quarantine: pa.Table
    counts: dict[str, int] = field(default_factory=dict)


def _decode_text(text: str | bytes | None) -> str | None:
    if text is None or isinstance(text, str):
        if isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise BadImage("text_not_utf8", "text is not valid UTF-8") from None
        return text
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadImage("text_not_utf8", f"text is not valid UTF-8 (byte {exc.start}: {text[exc.start:exc.start + 4]!r})") from None


def _capped(data: bytes | None, cap: int) -> bytes | None:
    return data if data is not None and len(data) <= cap else None


def build_shard(items: Iterator[RawItem], *, max_pixels: int | None = None, limits: Limits | None = None) -> ShardResult:
    """Validate raw items into a record table (RECORD_SCHEMA) and a quarantine table.

    Every item ends up in exactly one of the two. Quarantined items keep their raw bytes and text
    only up to ``limits.quarantine_max_bytes`` each (readers never read items from outside the root).
    """
    if limits is None:
        limits = Limits() if max_pixels is None else Limits(max_image_pixels=max_pixels)
    cap = limits.quarantine_max_bytes
    rec: dict[str, list] = {name: [] for name in RECORD_SCHEMA.names}
    qua: dict[str, list] = {name: [] for name in QUARANTINE_SCHEMA.names}

    def quarantine(item: RawItem, reason: str, detail: str):
        text = item.text.decode("utf-8", "replace") if isinstance(item.text, bytes) else item.text
        if text is not None:
            text = text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates cannot be stored
            if len(text) > cap:
                text = None
        qua["source"].append(_storable(item.source))
        qua["reason"].append(reason)
        qua["detail"].append(_storable(detail))
        qua["image"].append(_capped(item.image, cap))
        qua["text"].append(text)
        qua["label"].append(None if item.label is None else _storable(str(item.label)))

    for item in items:
        if item.error is not None:
            quarantine(item, *item.error)
            continue
        try:
            text = _decode_text(item.text)
            if text is not None and len(text) > limits.max_text_chars:
                raise BadImage("text_too_long", f"{len(text):,} characters is over the limit of "
                               f"{limits.max_text_chars:,} (input.max_text_chars)")
            width = height = None
            if item.image is not None:
                if len(item.image) > limits.max_file_bytes:
                    raise BadImage("file_too_large", f"{len(item.image):,} bytes is over the limit of "
                                   f"{limits.max_file_bytes:,} (input.max_file_bytes)")
                info = probe_image(item.image, max_pixels=limits.max_image_pixels)
                width, height = info.width, info.height
            elif item.has_image and text is None:
                raise BadImage("empty_item", "neither image nor text")
            label = None if item.label is None else str(item.label)
            if not _is_utf8(item.source) or (label is not None and not _is_utf8(label)):
                raise BadImage("name_not_utf8", "the file name or label is not valid UTF-8")
        except BadImage as exc:
            quarantine(item, exc.reason, exc.detail)
            continue
        rec["id"].append(content_id(item.source, item.image, text, label))
        rec["source"].append(item.source)
        rec["image"].append(item.image)
        rec["text"].append(text)
        rec["label"].append(label)
        rec["width"].append(width)
        rec["height"].append(height)
        rec["meta"].append(_meta_json(item.meta))
    records = pa.Table.from_pydict(rec, schema=RECORD_SCHEMA)
    quarantine_t = pa.Table.from_pydict(qua, schema=QUARANTINE_SCHEMA)
    return ShardResult(records, quarantine_t, {"rows": records.num_rows, "quarantined": quarantine_t.num_rows})


def _is_utf8(s: str) -> bool:
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _storable(s: str) -> str:
    """``s`` with anything UTF-8 cannot hold (lone surrogates from undecodable names) replaced."""
    return s.encode("utf-8", "replace").decode("utf-8") if not s.isascii() else s


def _meta_json(meta: dict[str, Any] | None) -> str | None:
    if not meta:
        return None
    return _storable(json.dumps(meta, ensure_ascii=False, sort_keys=True, default=str))


def file_fingerprint(paths: list[Path], root: Path) -> list[tuple[str, int, int]]:
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            continue
        try:
            rel = str(p.relative_to(root))
        except ValueError:
            rel = str(p)
        out.append((rel, st.st_size, st.st_mtime_ns))
    return out


def list_files(root: Path) -> list[str]:
    """All files under ``root`` as sorted POSIX relative paths (see :func:`~curate.readers.confine.walk`)."""
    return walk(root)
