"""Image folders (class sub-folders = labels, also inside a .zip) and images with .txt caption sidecars."""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterator

from curate.errors import InputError
from curate.imageinfo import IMAGE_EXTENSIONS
from curate.readers.base import RawItem, Reader, ReadTask, chunked, list_files


class _FileTree:
    """Lists and reads files from a folder or a zip archive with the same relative paths."""

    def __init__(self, path: Path):
        self.path = path
        self.is_zip = path.is_file() and zipfile.is_zipfile(path)
        if path.is_file() and not self.is_zip:
            raise InputError(f"input.path: {path} is a file but not a folder or a .zip archive")
        self._zip: zipfile.ZipFile | None = None

    def list(self) -> list[str]:
        if self.is_zip:
            with zipfile.ZipFile(self.path) as zf:
                names = [i.filename for i in zf.infolist() if not i.is_dir()]
            return sorted(n for n in names if not any(part.startswith((".", "__MACOSX")) for part in n.split("/")))
        return list_files(self.path)

    def read(self, rel: str) -> bytes:
        if self.is_zip:
            if self._zip is None:
                self._zip = zipfile.ZipFile(self.path)
            return self._zip.read(rel)
        return (self.path / rel).read_bytes()

    def close(self):
        if self._zip is not None:
            self._zip.close()
            self._zip = None


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

    def _entries(self) -> tuple[_FileTree, list[str], str]:
        tree = _FileTree(self.path)
        names = [n for n in tree.list() if PurePosixPath(n).suffix.lower() in IMAGE_EXTENSIONS]
        prefix = _strip_common_root(names) if tree.is_zip else ""
        return tree, names, prefix

    def tasks(self) -> Iterator[ReadTask]:
        tree, names, prefix = self._entries()
        for i, chunk in enumerate(chunked(names, self.cfg.shard_size)):
            yield ReadTask(index=i, payload=(prefix, chunk), items=len(chunk))

    def read(self, task: ReadTask) -> Iterator[RawItem]:
        prefix, names = task.payload
        tree = _FileTree(self.path)
        try:
            for rel in names:
                inner = rel[len(prefix):] if rel.startswith(prefix) else rel
                label = inner.split("/")[0] if "/" in inner else None
                try:
                    data = tree.read(rel)
                except OSError as exc:
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
        names = tree.list()
        texts = {str(PurePosixPath(n).with_suffix("")) for n in names if n.lower().endswith(".txt")}
        images = [n for n in names if PurePosixPath(n).suffix.lower() in IMAGE_EXTENSIONS]
        pairs = [(n, (stem + ".txt") if (stem := str(PurePosixPath(n).with_suffix(""))) in texts else None) for n in images]
        for i, chunk in enumerate(chunked(pairs, self.cfg.shard_size)):
            yield ReadTask(index=i, payload=chunk, items=len(chunk))

    def read(self, task: ReadTask) -> Iterator[RawItem]:
        tree = _FileTree(self.path)
        try:
            for image_name, text_name in task.payload:
                try:
                    data = tree.read(image_name)
                    text = tree.read(text_name).strip() if text_name else None
                except OSError as exc:
                    yield RawItem(source=image_name, error=("unreadable_file", str(exc)))
                    continue
                yield RawItem(source=image_name, image=data, text=text)
        finally:
            tree.close()
