"""Reader interface and the shared mechanics of turning raw items into record shards.

A reader plans *tasks* (picklable, deterministic order; one task becomes one data shard) and reads
each task into :class:`RawItem` objects. :func:`build_shard` turns those into the record table and the
quarantine table; it is the same for every format.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

import pyarrow as pa

from curate.errors import InputError
from curate.imageinfo import BadImage, probe_image
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
        self.path = Path(cfg.path).expanduser()
        if not self.path.exists() and not self._is_pattern():
            raise InputError(f"input.path: {cfg.path!r} does not exist (resolved to {self.path.absolute()})")

    def _is_pattern(self) -> bool:
        return False

    def tasks(self) -> Iterator[ReadTask]:
        """Plan the read; deterministic for the same input."""
        raise NotImplementedError

    def read(self, task: ReadTask) -> Iterator[RawItem]:
        raise NotImplementedError

    def fingerprint_paths(self) -> list[Path]:
        """Files whose (name, size, mtime) identify the input."""
        if self.path.is_file():
            return [self.path]
        return sorted(p for p in self.path.rglob("*") if p.is_file())


def safe_join(root: Path, rel: str) -> Path:
    """Resolve ``rel`` inside ``root``; raise BadImage('path_outside_root') if it escapes."""
    root_r = root.resolve()
    candidate = (root_r / rel).resolve()
    if candidate != root_r and root_r not in candidate.parents:
        raise BadImage("path_outside_root", f"{rel!r} resolves outside the dataset root {root_r}")
    return candidate


def read_file_item(root: Path, rel: str) -> tuple[bytes | None, tuple[str, str] | None]:
    """Read a file named in a manifest, safely inside ``root``. Returns (bytes, error)."""
    try:
        p = safe_join(root, rel)
    except BadImage as exc:
        return None, (exc.reason, exc.detail)
    try:
        return p.read_bytes(), None
    except FileNotFoundError:
        return None, ("missing_file", f"{rel} not found under {root}")
    except IsADirectoryError:
        return None, ("missing_file", f"{rel} is a directory")
    except OSError as exc:
        return None, ("unreadable_file", f"{rel}: {exc.strerror or exc}")


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


def build_shard(items: Iterator[RawItem], *, max_pixels: int) -> ShardResult:
    """Validate raw items into a record table (RECORD_SCHEMA) and a quarantine table."""
    rec: dict[str, list] = {name: [] for name in RECORD_SCHEMA.names}
    qua: dict[str, list] = {name: [] for name in QUARANTINE_SCHEMA.names}

    def quarantine(item: RawItem, reason: str, detail: str):
        qua["source"].append(item.source)
        qua["reason"].append(reason)
        qua["detail"].append(detail)
        qua["image"].append(item.image)
        qua["text"].append(item.text.decode("utf-8", "replace") if isinstance(item.text, bytes) else item.text)
        qua["label"].append(item.label)

    for item in items:
        if item.error is not None:
            quarantine(item, *item.error)
            continue
        try:
            text = _decode_text(item.text)
            width = height = None
            if item.image is not None:
                info = probe_image(item.image, max_pixels=max_pixels)
                width, height = info.width, info.height
            elif item.has_image and text is None:
                raise BadImage("empty_item", "neither image nor text")
        except BadImage as exc:
            quarantine(item, exc.reason, exc.detail)
            continue
        label = None if item.label is None else str(item.label)
        rec["id"].append(content_id(item.source, item.image, text, label))
        rec["source"].append(item.source)
        rec["image"].append(item.image)
        rec["text"].append(text)
        rec["label"].append(label)
        rec["width"].append(width)
        rec["height"].append(height)
        rec["meta"].append(json.dumps(item.meta, ensure_ascii=False, sort_keys=True, default=str) if item.meta else None)
    records = pa.Table.from_pydict(rec, schema=RECORD_SCHEMA)
    quarantine_t = pa.Table.from_pydict(qua, schema=QUARANTINE_SCHEMA)
    return ShardResult(records, quarantine_t, {"rows": records.num_rows, "quarantined": quarantine_t.num_rows})


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
    """All files under ``root`` as sorted POSIX relative paths (hidden files and folders skipped)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel_dir = os.path.relpath(dirpath, root)
        for f in filenames:
            if f.startswith("."):
                continue
            out.append(f if rel_dir == "." else f"{rel_dir}/{f}".replace(os.sep, "/"))
    out.sort()
    return out
