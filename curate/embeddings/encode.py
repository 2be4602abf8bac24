"""Batched embedding of images and texts with a loaded model (the mechanics behind the ``embed`` stage
and the throughput benchmark)."""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from curate.embeddings.images import ImageDecoder

log = logging.getLogger(__name__)


def embed_images(clip, blobs: Sequence[bytes | None], decoder: ImageDecoder, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Image embeddings of encoded images.

    Returns ``(embeddings, ok)``: float32 ``(n, D)`` L2-normalised (zero rows where ``ok`` is false: no
    image or undecodable) and the bool mask ``(n,)``. Decoding runs in ``decoder``'s workers while the
    device encodes the previous batch; results stay on the device until the end (one sync). ``clip`` is
    any encoder with ``encode_pixels`` and ``embed_dim`` (:class:`~curate.models.ClipModel`,
    :class:`~curate.models.vision.ImageEncoder`)."""
    n = len(blobs)
    out = np.zeros((n, clip.embed_dim), dtype=np.float32)
    ok_all = np.zeros(n, dtype=bool)
    chunks = [blobs[i:i + batch_size] for i in range(0, n, batch_size)]
    feats, where = [], []
    for k, (pixels, ok) in enumerate(decoder.imap(chunks)):
        ok_all[k * batch_size:k * batch_size + len(ok)] = ok
        if len(pixels):
            feats.append(clip.encode_pixels(pixels, to_numpy=False))
            where.append(np.flatnonzero(ok) + k * batch_size)
    if feats:
        if isinstance(feats[0], np.ndarray):  # an onnxruntime encoder returns numpy
            out[np.concatenate(where)] = np.concatenate(feats)
        else:
            import torch

            out[np.concatenate(where)] = torch.cat(feats).cpu().numpy()
    return out, ok_all


def embed_texts(encoder, texts: Sequence[str | None], batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Text embeddings with a :class:`~curate.models.ClipModel` or :class:`~curate.models.TextEncoder`.

    Returns ``(embeddings, ok)`` like :func:`embed_images`; ``None`` texts give zero rows, ``ok`` false."""
    n = len(texts)
    ok = np.array([t is not None for t in texts], dtype=bool)
    idx = np.flatnonzero(ok)
    out = np.zeros((n, encoder.embed_dim), dtype=np.float32)
    for s in range(0, len(idx), batch_size):
        part = idx[s:s + batch_size]
        out[part] = encoder.encode_texts([texts[i] for i in part])
    return out, ok
