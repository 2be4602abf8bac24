"""WebDataset tar shards: members grouped by key (``000123.jpg`` + ``000123.txt`` + ``000123.cls``).

``input.path`` is a tar file, a folder of ``*.tar`` files, or a brace pattern such as
``shards/data-{000000..000099}.tar``. Each tar becomes one data shard.
"""

from __future__ import annotations

import glob
import json
import re
import tarfile
import zlib
from pathlib import Path
from typing import Iterator

from curate.errors import InputError
from curate.imageinfo import IMAGE_EXTENSIONS, BadImage
from curate.readers.base import RawItem, Reader, ReadTask
from curate.readers.confine import TooLarge, confine, walk

_TEXT_EXT = ("txt", "caption", "text")
_LABEL_EXT = ("cls", "label")


def expand_braces(pattern: str) -> list[str]:
    """Expand ``{000..009}`` ranges (zero padding kept), as webdataset does."""
    m = re.search(r"\{(\d+)\.\.(\d+)\}", pattern)
    if not m:
        return [pattern]
    lo, hi = m.group(1), m.group(2)
    width = len(lo)
    out = []
    for k in range(int(lo), int(hi) + 1):
        out.extend(expand_braces(pattern[: m.start()] + str(k).zfill(width) + pattern[m.end():]))
    return out


class WebDatasetReader(Reader):
    format = "webdataset"

    def _is_pattern(self) -> bool:
        return any(ch in str(self.cfg.path) for ch in "{*?")

    def shard_files(self) -> list[Path]:
        p = str(self.cfg.path)
        if self.path.is_dir():
            files = [self.path / rel for rel in walk(self.path) if rel.endswith(".tar")]
        elif self._is_pattern():
            files = sorted({Path(f) for pat in expand_braces(p) for f in glob.glob(pat)})
        else:
            files = [self.path]
        if not files:
            raise InputError(f"input.path: no .tar shards found at {p}")
        return files

    def fingerprint_paths(self) -> list[Path]:
        return self.shard_files()

    def tasks(self) -> Iterator[ReadTask]:
        for i, f in enumerate(self.shard_files()):
            yield ReadTask(index=i, payload=str(f))

    def read(self, task: ReadTask) -> Iterator[RawItem]:
        path = Path(task.payload)
        if self.path.is_dir():
            try:
                confine(self.path, path.relative_to(self.path).as_posix())
            except BadImage as exc:
                yield RawItem(source=path.name, error=(exc.reason, exc.detail))
                return
        try:
            tf = tarfile.open(path)
        except (tarfile.TarError, OSError) as exc:
            yield RawItem(source=path.name, error=("unreadable_file", f"not a readable tar file: {exc}"))
            return
        current_key, sample, error = None, {}, None
        max_bytes = self.limits.max_file_bytes
        try:
            for member in tf:
                if not member.isfile():
                    continue
                name = member.name
                base = name.rsplit("/", 1)[-1]
                if "." not in base:
                    continue
                dirpart = name[: len(name) - len(base)]
                key, ext = base.split(".", 1)
                key = dirpart + key
                if key != current_key and current_key is not None:
                    yield self._item(path, current_key, sample, error)
                    sample, error = {}, None
                current_key = key
                try:
                    confine(None, name)
                    if member.size > max_bytes:
                        raise TooLarge(f"member {name}: {member.size:,} bytes is over the limit of {max_bytes:,} "
                                       "(input.max_file_bytes)")
                except BadImage as exc:
                    error = error or (exc.reason, exc.detail)
                    continue
                sample[ext.lower()] = tf.extractfile(member).read()
            if current_key is not None:
                yield self._item(path, current_key, sample, error)
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            yield RawItem(source=f"{path.name}:{current_key}", error=("truncated_file", f"tar shard ends early: {exc}"))
        finally:
            tf.close()

    def _item(self, path: Path, key: str, sample: dict[str, bytes], error: tuple[str, str] | None = None) -> RawItem:
        if error is not None:  # one bad member sends the whole sample to quarantine, without its bytes
            return RawItem(source=f"{path.name}:{key}", error=error)
        image = next((v for k, v in sample.items() if "." + k in IMAGE_EXTENSIONS), None)
        text = next((sample[k] for k in _TEXT_EXT if k in sample), None)
        label_b = next((sample[k] for k in _LABEL_EXT if k in sample), None)
        meta = None
        if "json" in sample:
            try:
                meta = json.loads(sample["json"])
                meta = meta if isinstance(meta, dict) else {"json": meta}
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                meta = {"json_error": "member .json is not valid JSON"}
        label = label_b.decode("utf-8", "replace").strip() if label_b is not None else None
        item = RawItem(source=f"{path.name}:{key}", image=image, text=text.strip() if text else text, label=label, meta=meta)
        if image is None and text is None:
            item.error = ("empty_item", f"sample {key} has no image or text member (members: {', '.join(sorted(sample))})")
        return item
