"""COCO captions JSON (``images`` + ``annotations`` with ``caption``).

``input.path`` is a captions JSON file or a folder holding ``annotations/captions_*.json`` (or
``captions*.json``). Image ``file_name``s are resolved inside ``input.root`` (default: the folder of
the JSON, then its parent), also under a sub-folder named after the split (``captions_val2017.json`` ->
``val2017/``). ``input.captions: first`` (default) gives one row per image with its other captions in
``meta.other_captions``; ``all`` gives one row per caption.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterator

from curate.errors import InputError
from curate.readers.base import RawItem, Reader, ReadTask, chunked, read_file_item
from curate.readers.confine import walk


class CocoReader(Reader):
    format = "coco"

    def json_files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        found = sorted((self.path / "annotations").glob("captions*.json")) or sorted(self.path.glob("captions*.json"))
        if not found:
            raise InputError(f"input.path: no captions*.json in {self.path} or {self.path / 'annotations'}")
        return found

    def fingerprint_paths(self) -> list[Path]:
        files = self.json_files()
        root = Path(self.cfg.root) if self.cfg.root else None
        out = list(files)
        for f in files:
            base = root or f.parent
            out.extend(p for p in (base / rel for rel in walk(base)) if p not in files)
        return out

    def _roots(self, json_path: Path) -> list[Path]:
        if self.cfg.root:
            return [Path(self.cfg.root).expanduser()]
        parent = json_path.parent
        roots = [parent]
        if parent.name == "annotations":
            roots.append(parent.parent)
        split = re.sub(r"^captions_?", "", json_path.stem)
        return roots + [r / split for r in list(roots) if split]

    def tasks(self) -> Iterator[ReadTask]:
        entries = []
        for jf in self.json_files():
            try:
                doc = json.loads(jf.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputError(f"{jf}: not a valid COCO JSON file ({exc})") from None
            if not isinstance(doc, dict) or "images" not in doc or "annotations" not in doc:
                raise InputError(f"{jf}: not a COCO captions file (needs 'images' and 'annotations')")
            caps: dict[int, list[tuple[int, str]]] = {}
            for a in doc["annotations"]:
                if "caption" in a:
                    caps.setdefault(a["image_id"], []).append((a.get("id", 0), a["caption"]))
            roots = [str(r) for r in self._roots(jf)]
            for img in sorted(doc["images"], key=lambda im: im["id"]):
                captions = sorted(caps.get(img["id"], []))
                meta = {"coco_image_id": img["id"], "json": jf.name}
                for k in ("license", "coco_url", "flickr_url"):
                    if k in img:
                        meta[k] = img[k]
                if self.cfg.captions == "all" and captions:
                    for cap_id, cap in captions:
                        entries.append((roots, img["file_name"], cap, {**meta, "coco_caption_id": cap_id}))
                else:
                    first = captions[0][1] if captions else None
                    if len(captions) > 1:
                        meta["other_captions"] = [c for _, c in captions[1:]]
                    entries.append((roots, img["file_name"], first, meta))
        for i, chunk in enumerate(chunked(entries, self.cfg.shard_size)):
            yield ReadTask(index=i, payload=chunk, items=len(chunk))

    def read(self, task: ReadTask) -> Iterator[RawItem]:
        max_bytes = self.limits.max_file_bytes
        for roots, file_name, caption, meta in task.payload:
            source = file_name + (f"#caption={meta['coco_caption_id']}" if "coco_caption_id" in meta else "")
            data, error = None, None
            for r in roots:  # the first root that has the file; else the error from the first root
                data, error = read_file_item(Path(r), str(file_name), max_bytes=max_bytes)
                if error is None or error[0] != "missing_file":
                    break
            if error is not None and error[0] == "missing_file":
                data, error = read_file_item(Path(roots[0]), str(file_name), max_bytes=max_bytes)
            yield RawItem(source=source, image=data, text=caption, meta=meta, error=error)
