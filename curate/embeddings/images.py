"""Decoding and resizing images in worker processes while the model runs.

Workers turn encoded image bytes into uint8 pixel arrays ``(n, H, W, 3)`` that are already resized and
cropped; the device does the float conversion and normalisation (4x less data to move than float32).
:class:`ResizeCrop` reproduces open_clip's eval transform (torchvision ``Resize`` + ``CenterCrop`` on a
PIL image) with PIL alone, so workers start without importing torch.
"""

from __future__ import annotations

import io
import logging
import multiprocessing as mp
import os
import sys
import weakref
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
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

    def __call__(self, img):
        from PIL import Image

        resample = Image.Resampling.BILINEAR if self.interpolation == "bilinear" else Image.Resampling.BICUBIC
        th, tw = self.size
        if img.mode != "RGB":
            img = img.convert("RGB")
        w, h = img.size
        if self.resize_mode == "squash":
            return img.resize((tw, th), resample)
        if th == tw:
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = th, int(th * long / short)
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


def transform_for(clip) -> ResizeCrop:
    """The worker-side transform for a loaded :class:`curate.models.ClipModel`."""
    pp = dict(getattr(clip.model.visual, "preprocess_cfg", {}) or {})
    mode = pp.get("resize_mode", "shortest")
    if mode not in ("shortest", "squash"):
        raise ValueError(f"resize_mode {mode!r} is not supported by the fast image path")
    return ResizeCrop(clip.image_size, pp.get("interpolation", "bicubic"), mode)


_TRANSFORM: ResizeCrop | None = None


def _init_worker(transform: ResizeCrop) -> None:
    global _TRANSFORM
    _TRANSFORM = transform
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def decode_chunk(blobs: Sequence[bytes | None], transform: ResizeCrop | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode, resize and crop a list of encoded images.

    Returns ``(pixels, ok)``: uint8 ``(n_ok, H, W, 3)`` for the images that decoded, and a bool mask
    ``(n,)`` saying which did (``None`` and undecodable bytes are ``False``)."""
    from PIL import Image, UnidentifiedImageError

    t = transform or _TRANSFORM
    h, w = t.size
    out = np.empty((len(blobs), h, w, 3), dtype=np.uint8)
    ok = np.zeros(len(blobs), dtype=bool)
    n = 0
    for i, b in enumerate(blobs):
        if b is None:
            continue
        try:
            with Image.open(io.BytesIO(b)) as im:
                out[n] = np.asarray(t(im))
        except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
            log.debug("could not decode image %d: %s", i, exc)
            continue
        ok[i] = True
        n += 1
    return out[:n], ok


def default_workers() -> int:
    """Decode workers for ``num_workers: auto``: all cores but one, at most 16."""
    return max(1, min((os.cpu_count() or 2) - 1, 16))


class ImageDecoder:
    """Decodes chunks of images in ``num_workers`` processes (0 = in this process), in order, with up to
    ``prefetch`` chunks decoded ahead of the consumer (so decoding overlaps the model)."""

    def __init__(self, transform: ResizeCrop, num_workers: int, prefetch: int | None = None):
        self.transform = transform
        self.num_workers = int(num_workers)
        self.prefetch = prefetch or max(2, 2 * self.num_workers)
        self._pool: ProcessPoolExecutor | None = None

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            method = "forkserver" if sys.platform.startswith("linux") else "spawn"
            self._pool = ProcessPoolExecutor(self.num_workers, mp_context=mp.get_context(method),
                                             initializer=_init_worker, initargs=(self.transform,))
            weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        return self._pool

    def imap(self, chunks: Iterable[Sequence[bytes | None]]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``decode_chunk`` over ``chunks``, results in input order."""
        if self.num_workers <= 0:
            for c in chunks:
                yield decode_chunk(c, self.transform)
            return
        pool = self._get_pool()
        pending: deque = deque()
        it = iter(chunks)
        for c in it:
            pending.append(pool.submit(decode_chunk, list(c)))
            if len(pending) >= self.prefetch:
                break
        while pending:
            fut = pending.popleft()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(decode_chunk, list(nxt)))
            yield fut.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
