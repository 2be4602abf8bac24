"""Image folders (class sub-folders = labels, also inside a .zip) and images with .txt caption sidecars."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Iterator

from curate.errors import InputError
from curate.imageinfo import IMAGE_EXTENSIONS, BadImage
from curate.readers.base import RawItem, Reader, ReadTask, chunked, list_files
from curate.readers.confine import confine, read_inside
from curate.readers.limits import DEFAULT_MAX_FILE_BYTES
from curate.readers.ziparchive import MemberReader, list_members


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _stem(name: str) -> str:
    return os.path.splitext(name)[0]


class _FileTree:
    """Lists and reads files from a folder or a zip archive with the same relative paths.

    ``list()`` gives *entries*: relative paths for a folder, zip member tuples for an archive (so that
    workers need not parse the archive's directory again); ``name(entry)`` and ``read(entry)`` take either.
    """

    def __init__(self, path: Path, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES):
        self.path = path
        self.max_bytes = max_bytes
        self.is_zip = path.is_file() and zipfile.is_zipfile(path)
        if path.is_file() and not self.is_zip:
            raise InputError(f"input.path: {path} is a file but not a folder or a .zip archive")
        self._members: MemberReader | None = None

    def list(self) -> list:
        if self.is_zip:
            try:
                members = list_members(self.path)
            except zipfile.BadZipFile as exc:
                raise InputError(f"input.path: {exc}") from None
            # hidden members are skipped; '..' is kept so that confine() refuses it (quarantined, not lost)
            members = [m for m in members if not any(p.startswith((".", "__MACOSX")) and p != ".." for p in m[0].split("/"))]
            return sorted(members)
        return list_files(self.path)

    @staticmethod
    def name(entry) -> str:
        return entry if isinstance(entry, str) else entry[0]

    def read(self, entry) -> bytes:
        """The entry's bytes, confined to the root; raises BadImage (quarantine reason) or OSError."""
        if self.is_zip:
            confine(None, entry[0])
            if self._members is None:
                self._members = MemberReader(self.path)
            return self._members.read(entry, max_bytes=self.max_bytes)
        return read_inside(self.path, entry, max_bytes=self.max_bytes)

    def close(self):
        if self._members is not None:
            self._members.close()
            self._members = None


def _strip_common_root(names: list[str]) -> str:
    """A zip often holds one top folder (``train/cat/1.jpg``); labels come from below it."""
    tops = {n.split("/", 1)[0] for n in names}
    if len(tops) == 1 and all("/" in n for n in names):
        sub = {n.split("/")[1] for n in names if n.count("/") >= 2}
        if sub:
            return next(iter(tops)) + "/"
    return ""


class ImageFolderReader(Reader):
    """``root/<label>/<image>``: class sub-folders give labels; images at the top level have none."""

    format = "imagefolder"

    def tasks(self) -> Iterator[ReadTask]:
        tree = _FileTree(self.path)
        entries = [e for e in tree.list() if _is_image_name(tree.name(e))]
        prefix = _strip_common_root([tree.name(e) for e in entries]) if tree.is_zip else ""
        for i, chunk in enumerate(chunked(entries, self.cfg.shard_size)):
            yield ReadTask(index=i, payload=(prefix, chunk), items=len(chunk))

    def read(self, task: ReadTask) -> Iterator[RawItem]:
        prefix, entries = task.payload
        tree = _FileTree(self.path, max_bytes=self.limits.max_file_bytes)
        try:
            for entry in entries:
                rel = tree.name(entry)
                inner = rel[len(prefix):] if rel.startswith(prefix) else rel
                label = inner.split("/")[0] if "/" in inner else None
                try:
                    data = tree.read(entry)
                except BadImage as exc:
                    yield RawItem(source=rel, label=label, error=(exc.reason, exc.detail))
                    continue
                except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
                    yield RawItem(source=rel, label=label, error=("unreadable_file", str(exc)))
                    continue
                yield RawItem(source=rel, image=data, label=label)
        finally:
            tree.close()


class CaptionsReader(Reader):
    """Images with a caption sidecar of the same stem (``a.jpg`` + ``a.txt``); sub-folders allowed."""

    format = "captions"

    def tasks(self) -> Iterator[ReadTask]:
        tree = _FileTree(self.path)
        entries = tree.list()
        texts = {_stem(tree.name(e)): e for e in entries if tree.name(e).lower().endswith(".txt")}
        pairs = [(e, texts.get(_stem(tree.name(e)))) for e in entries if _is_image_name(tree.name(e))]
        for i, chunk in enumerate(chunked(pairs, self.cfg.shard_size)):
            yield ReadTask(index=i, payload=chunk, items=len(chunk))

    def read(self, task: ReadTask) -> Iterator[RawItem]:
        tree = _FileTree(self.path, max_bytes=self.limits.max_file_bytes)
        try:
            for image_entry, text_entry in task.payload:
                source = tree.name(image_entry)
                try:
                    data = tree.read(image_entry)
                    text = tree.read(text_entry).strip() if text_entry is not None else None
                except BadImage as exc:
                    yield RawItem(source=source, error=(exc.reason, exc.detail))
                    continue
                except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
                    yield RawItem(source=source, error=("unreadable_file", str(exc)))
                    continue
                yield RawItem(source=source, image=data, text=text)
        finally:
            tree.close()
