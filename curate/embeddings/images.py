"""Decoding and resizing images in worker processes while the model runs.

Workers turn encoded image bytes into uint8 pixel arrays ``(n, H, W, 3)`` that are already resized and
cropped; the device does the float conversion and normalisation (4x less data to move than float32).
:class:`ResizeCrop` reproduces open_clip's eval transform (torchvision ``Resize`` + ``CenterCrop`` on a
PIL image) with PIL alone, so workers start without importing torch.
"""

from __future__ import annotations

import io
import logging
import math
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import weakref
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResizeCrop:
    """open_clip's eval geometry: resize (shortest side, or squash) then centre-crop, on PIL images.

    Matches torchvision's ``Resize(int)`` + ``CenterCrop((h, w))`` pixel for pixel."""

    size: tuple[int, int]  # (height, width)
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    #: Let JPEG decoding scale down by 1/2, 1/4 or 1/8 (DCT scaling) while keeping at least the target
    #: size: several times faster on large photos, pixels differ slightly from open_clip's reference.
    draft: bool = False
    #: Share of the resized image the centre crop keeps (timm's ``crop_pct``): the shortest side is first
    #: resized to ``floor(size / crop_pct)``. 1.0 (open_clip) resizes straight to the crop size.
    crop_pct: float = 1.0

    def __call__(self, img):
        from PIL import Image

        resample = Image.Resampling.BILINEAR if self.interpolation == "bilinear" else Image.Resampling.BICUBIC
        th, tw = self.size
        if self.draft and img.format == "JPEG":
            w0, h0 = img.size
            scale = min(w0 / tw, h0 / th) if self.resize_mode == "squash" else min(w0, h0) * self.crop_pct / min(th, tw)
            if scale >= 2:
                img.draft("RGB", (int(np.ceil(w0 / scale)), int(np.ceil(h0 / scale))))
        if img.mode != "RGB":
            img = img.convert("RGB")
        w, h = img.size
        if self.resize_mode == "squash":
            return img.resize((tw, th), resample)
        if th == tw:
            short, long = (w, h) if w <= h else (h, w)
            new_short = th if self.crop_pct >= 1.0 else int(math.floor(th / self.crop_pct))
            new_long = int(new_short * long / short)
            new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        else:  # open_clip's ResizeKeepRatio: scale so both sides cover the target
            ratio = min(w / tw, h / th)
            new_w, new_h = round(w / ratio), round(h / ratio)
        if (new_w, new_h) != (w, h):
            img = img.resize((new_w, new_h), resample)
        left = int(round((new_w - tw) / 2.0))
        top = int(round((new_h - th) / 2.0))
        if left < 0 or top < 0:  # smaller than the crop (cannot happen after a shortest-side resize)
            canvas = Image.new("RGB", (tw, th))
            canvas.paste(img, (max(0, -left), max(0, -top)))
            return canvas
        return img.crop((left, top, left + tw, top + th))


def transform_for(clip, *, draft: bool = False) -> ResizeCrop:
    """The worker-side transform for a loaded :class:`curate.models.ClipModel` (or any encoder with a
    ``resize_crop`` method, e.g. :class:`curate.models.vision.ImageEncoder`)."""
    if hasattr(clip, "resize_crop"):
        return clip.resize_crop(draft=draft)
    pp = dict(getattr(clip.model.visual, "preprocess_cfg", {}) or {})
    mode = pp.get("resize_mode", "shortest")
    if mode not in ("shortest", "squash"):
        raise ValueError(f"resize_mode {mode!r} is not supported by the fast image path")
    return ResizeCrop(clip.image_size, pp.get("interpolation", "bicubic"), mode, draft)


_TRANSFORM: ResizeCrop | None = None
_MAPS: dict[str, np.memmap] = {}


def _init_worker(transform: ResizeCrop) -> None:
    global _TRANSFORM
    _TRANSFORM = transform
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def _decode_one(b, t: ResizeCrop):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(b)) as im:
            return np.asarray(t(im))
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        log.debug("could not decode an image: %s", exc)
        return None


def decode_chunk(blobs: Sequence[bytes | None], transform: ResizeCrop | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode, resize and crop a list of encoded images.

    Returns ``(pixels, ok)``: uint8 ``(n_ok, H, W, 3)`` for the images that decoded, and a bool mask
    ``(n,)`` saying which did (``None`` and undecodable bytes are ``False``)."""
    t = transform or _TRANSFORM
    h, w = t.size
    out = np.empty((len(blobs), h, w, 3), dtype=np.uint8)
    ok = np.zeros(len(blobs), dtype=bool)
    n = 0
    for i, b in enumerate(blobs):
        if b is None:
            continue
        px = _decode_one(b, t)
        if px is not None:
            out[n] = px
            ok[i] = True
            n += 1
    return out[:n], ok


def _mapped(path: str, shape=None) -> np.memmap:
    m = _MAPS.get(path)
    if m is None:
        if len(_MAPS) > 256:
            _MAPS.clear()
        m = np.memmap(path, dtype=np.uint8, mode="r+", shape=shape)
        _MAPS[path] = m
    return m


def decode_into(in_path: str, spans: list[tuple[int, int] | None], out_path: str, out_shape: tuple,
                row0: int) -> np.ndarray:
    """Worker side of :class:`ImageDecoder`: read encoded images from a shared file and write pixels
    into rows ``row0...`` of another; only the small ``ok`` mask travels back through the pipe."""
    t = _TRANSFORM
    src = _mapped(in_path)
    out = _mapped(out_path, out_shape)
    ok = np.zeros(len(spans), dtype=bool)
    for i, span in enumerate(spans):
        if span is None:
            continue
        px = _decode_one(src[span[0]:span[0] + span[1]].tobytes(), t)
        if px is not None:
            out[row0 + i] = px
            ok[i] = True
    return ok


class _Slot:
    """A pair of shared files: encoded input bytes (grown as needed) and decoded pixels for one chunk."""

    def __init__(self, folder: Path, index: int, out_shape: tuple):
        self.folder, self.index, self.out_shape = folder, index, out_shape
        self.out_path = str(folder / f"out-{index}.u8")
        self.out = np.memmap(self.out_path, dtype=np.uint8, mode="w+", shape=out_shape)
        self.in_path: str | None = None
        self.inp: np.memmap | None = None
        self.generation = 0

    def write(self, blobs: Sequence[bytes | None]) -> list[tuple[int, int] | None]:
        total = sum(len(b) for b in blobs if b is not None)
        cap = 0 if self.inp is None else len(self.inp)
        if total > cap:
            if self.in_path:
                self.inp = None
                os.unlink(self.in_path)
            self.generation += 1  # a new name, so workers never use a stale mapping
            self.in_path = str(self.folder / f"in-{self.index}-{self.generation}.bin")
            self.inp = np.memmap(self.in_path, dtype=np.uint8, mode="w+", shape=(max(total, 2 * cap, 1 << 20),))
        spans, pos = [], 0
        for b in blobs:
            if b is None:
                spans.append(None)
                continue
            self.inp[pos:pos + len(b)] = np.frombuffer(b, dtype=np.uint8)
            spans.append((pos, len(b)))
            pos += len(b)
        return spans


def _shared_folder(need_bytes: int) -> Path:
    """A fresh folder in RAM-backed /dev/shm when it has room (containers often cap it at 64 MiB),
    else in the temporary directory."""
    base = None
    shm = Path("/dev/shm")
    if shm.is_dir():
        st = os.statvfs(shm)
        if st.f_bavail * st.f_frsize > 2 * need_bytes:
            base = str(shm)
    return Path(tempfile.mkdtemp(prefix="curate-decode-", dir=base))


def default_workers() -> int:
    """Decode workers for ``num_workers: auto``: all cores but one, at most 16."""
    return max(1, min((os.cpu_count() or 2) - 1, 16))


class ImageDecoder:
    """Decodes chunks of images in ``num_workers`` processes (0 = in this process), in order, with up to
    ``prefetch`` chunks decoded ahead of the consumer (so decoding overlaps the model).

    Encoded bytes and decoded pixels travel through shared memory-mapped files (one pair per chunk in
    flight), not through the pool's single result pipe, which would cap throughput at the pipe's
    bandwidth (about 150 KB of pixels per 224 x 224 image)."""

    def __init__(self, transform: ResizeCrop, num_workers: int, prefetch: int | None = None):
        self.transform = transform
        self.num_workers = int(num_workers)
        self.prefetch = prefetch or (self.num_workers + 2)
        self._pool: ProcessPoolExecutor | None = None
        self._folder: Path | None = None
        self._slots: dict[int, list[_Slot]] = {}

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            method = "forkserver" if sys.platform.startswith("linux") else "spawn"
            self._pool = ProcessPoolExecutor(self.num_workers, mp_context=mp.get_context(method),
                                             initializer=_init_worker, initargs=(self.transform,))
            weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        return self._pool

    def _get_slots(self, chunk: int) -> list[_Slot]:
        if chunk not in self._slots:
            h, w = self.transform.size
            shape = (chunk, h, w, 3)
            if self._folder is None:
                self._folder = _shared_folder(self.prefetch * chunk * h * w * 3)
                weakref.finalize(self, shutil.rmtree, str(self._folder), True)
            self._slots[chunk] = [_Slot(self._folder, len(self._slots) * 1000 + i, shape) for i in range(self.prefetch)]
        return self._slots[chunk]

    def imap(self, chunks: Iterable[Sequence[bytes | None]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``decode_chunk`` over ``chunks``, results in input order. A yielded pixel array is a view of
        shared memory, valid until the next item is requested: copy it (to the device) before then."""
        if self.num_workers <= 0:
            for c in chunks:
                yield decode_chunk(c, self.transform)
            return
        chunks = list(chunks)
        if not chunks:
            return
        size = max(len(c) for c in chunks)
        pool = self._get_pool()
        slots = self._get_slots(size)
        # one model batch is split into several decode tasks, so that every worker is busy even when a
        # shard holds only a few batches
        task = max(4, -(-size // self.num_workers))
        pending: deque = deque()
        free = deque(slots)
        it = iter(chunks)

        def submit(c) -> bool:
            if c is None:
                return False
            slot = free.popleft()
            spans = slot.write(c)
            futs = [pool.submit(decode_into, slot.in_path, spans[r:r + task], slot.out_path, slot.out_shape, r)
                    for r in range(0, len(spans), task)]
            pending.append((slot, futs, len(spans)))
            return True

        while free and submit(next(it, None)):
            pass
        while pending:
            slot, futs, n = pending.popleft()
            ok = np.concatenate([f.result() for f in futs])
            pixels = slot.out[:n] if ok.all() else slot.out[:n][ok]
            yield pixels, ok
            free.append(slot)
            submit(next(it, None))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._slots.clear()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
