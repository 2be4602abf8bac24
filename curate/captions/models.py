"""Model helpers for caption repair: CLIP scores of candidate captions and CoCa captioning.

Models are loaded with :func:`curate.models.clip.load_clip` (tags, checkpoint files, ``local-dir:``),
so caption repair loads exactly the model its ``embed`` stage used. torch and open_clip are imported
lazily. CoCa decoding is done here (beam search over ``model.text_decoder``) instead of open_clip's
``CoCa.generate``, which needs an older ``transformers`` (its ``BeamSearchScorer`` is gone in 5.x).
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Any, Sequence

import numpy as np

from curate.errors import CurateError, require

log = logging.getLogger(__name__)

SOT_TOKEN = 49406
EOT_TOKEN = 49407


def clip_scores(model: Any, image_embeddings: np.ndarray, texts: Sequence[Sequence[str]], *,
                batch_size: int = 256) -> list[list[float]]:
    """CLIP cosine score of each row's candidate texts against that row's image embedding.

    Parameters
    ----------
    model : curate.models.clip.ClipModel
        Anything with ``encode_texts(list[str]) -> (n, D)`` L2-normalised rows.
    image_embeddings : ndarray, shape (N, D)
        L2-normalised image embeddings (rows may be NaN for images without an embedding).
    texts : list of N lists of str
        The candidates per row.

    Returns
    -------
    list of N lists of float
        ``scores[i][j]`` = cosine(image i, texts[i][j]); NaN where the image has no embedding.
    """
    flat = [t for row in texts for t in row]
    if not flat:
        return [[] for _ in texts]
    unique = list(dict.fromkeys(flat))
    embs = []
    for i in range(0, len(unique), batch_size):
        embs.append(np.asarray(model.encode_texts(unique[i:i + batch_size]), dtype=np.float32))
    table = dict(zip(unique, np.concatenate(embs)))
    out = []
    for img, row in zip(image_embeddings, texts):
        out.append([float(np.dot(img, table[t])) for t in row])
    return out


def decode_images(images: Sequence[bytes | None], preprocess: Any):
    """Encoded image bytes -> a stacked tensor through ``preprocess`` (``None`` rows get zeros) and the
    indices of the rows that decoded."""
    torch = require("torch", "clip", "CoCa captioning")
    from PIL import Image

    tensors, ok = [], []
    for i, data in enumerate(images):
        if data is None:
            continue
        try:
            with Image.open(io.BytesIO(data)) as im:
                tensors.append(preprocess(im.convert("RGB")))
            ok.append(i)
        except (OSError, ValueError) as exc:  # undecodable images are image_quality's business
            log.debug("caption_repair: cannot decode image %d for captioning: %s", i, exc)
    if not tensors:
        return None, []
    return torch.stack(tensors), ok


def coca_generate(model: Any, pixels: Any, *, max_length: int = 30, min_length: int = 5, num_beams: int = 3,
                  length_penalty: float = 1.0) -> list[list[int]]:
    """Beam-search captions for a batch of preprocessed images with an open_clip CoCa model.

    Parameters
    ----------
    model : open_clip.CoCa
    pixels : torch.Tensor, shape (B, 3, H, W)
    max_length : int
        Longest caption in tokens, start token included.
    min_length : int
        The end token is forbidden before this many tokens.
    num_beams : int
        1 is greedy decoding.
    length_penalty : float
        Finished beams are ranked by ``sum(log p) / length ** length_penalty``.

    Returns
    -------
    list of B token-id lists (without the start and end tokens)
    """
    torch = require("torch", "clip", "CoCa captioning")
    if not hasattr(model, "text_decoder") or not hasattr(model, "_encode_image"):
        raise CurateError(f"generate.model: {type(model).__name__} is not a CoCa model (use e.g. coca_ViT-B-32)")
    k = max(1, int(num_beams))
    autocast = (torch.autocast(device_type="cuda", dtype=torch.float16) if pixels.is_cuda
                else contextlib.nullcontext())
    with torch.inference_mode(), autocast:
        image_latent, image_embs = model._encode_image(pixels)
        n = pixels.shape[0]
        image_latent = image_latent.repeat_interleave(k, 0)
        image_embs = image_embs.repeat_interleave(k, 0)
        seqs = torch.full((n * k, 1), SOT_TOKEN, dtype=torch.long, device=pixels.device)
        beam_scores = torch.zeros(n, k, device=pixels.device)
        beam_scores[:, 1:] = -float("inf")  # all beams start identical: expand only the first
        finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(n)]
        done = [False] * n
        for step in range(1, max_length):
            logits = model(None, seqs, image_latent=image_latent, image_embs=image_embs, output_labels=False)["logits"][:, -1]
            logp = torch.log_softmax(logits.float(), dim=-1)
            if step < min_length:
                logp[:, EOT_TOKEN] = -float("inf")
            vocab = logp.shape[-1]
            total = (beam_scores.view(-1, 1) + logp).view(n, k * vocab)
            top_scores, top_idx = total.topk(2 * k, dim=1)
            next_rows, next_tokens, next_scores = [], [], []
            for b in range(n):
                chosen = 0
                for rank, (s, idx) in enumerate(zip(top_scores[b].tolist(), top_idx[b].tolist())):
                    beam, tok = divmod(idx, vocab)
                    row = b * k + beam
                    if s == -float("inf"):
                        continue
                    if tok == EOT_TOKEN or step == max_length - 1:
                        # a hypothesis ends only if it ranks among the k best (as in HF's beam search),
                        # so that num_beams=1 is exactly greedy decoding
                        if not done[b] and rank < k:
                            toks = seqs[row, 1:].tolist() + ([] if tok == EOT_TOKEN else [tok])
                            finished[b].append((s / max(len(toks), 1) ** length_penalty, toks))
                        continue
                    if chosen < k:
                        next_rows.append(row)
                        next_tokens.append(tok)
                        next_scores.append(s)
                        chosen += 1
                while chosen < k:  # keep the shape: pad with a dead beam
                    next_rows.append(b * k)
                    next_tokens.append(EOT_TOKEN)
                    next_scores.append(-float("inf"))
                    chosen += 1
                if len(finished[b]) >= k:
                    done[b] = True
            if all(done):
                break
            rows = torch.tensor(next_rows, device=pixels.device)
            seqs = torch.cat([seqs[rows], torch.tensor(next_tokens, device=pixels.device).view(-1, 1)], dim=1)
            beam_scores = torch.tensor(next_scores, device=pixels.device).view(n, k)
    out = []
    for b in range(n):
        if finished[b]:
            out.append(max(finished[b], key=lambda st: st[0])[1])
        else:
            out.append(seqs[b * k, 1:].tolist())
    return out


def decode_tokens(tokens: list[int]) -> str:
    """Token ids -> text with open_clip's tokenizer, special tokens and extra spaces removed."""
    oc = require("open_clip", "clip", "CoCa captioning")
    torch = require("torch", "clip", "CoCa captioning")
    ids = [t for t in tokens if t not in (SOT_TOKEN, EOT_TOKEN, 0)]
    text = oc.decode(torch.tensor(ids, dtype=torch.long)) if ids else ""
    text = text.replace("<start_of_text>", "").replace("<end_of_text>", "")
    text = " ".join(text.split())
    # open_clip's BPE decoding puts a space before punctuation ("a dog .")
    for p in (" .", " ,", " !", " ?", " '"):
        text = text.replace(p, p.strip())
    return text


class Captioner:
    """A CoCa model loaded once per worker; :meth:`caption` turns image bytes into captions."""

    def __init__(self, model: str, pretrained: str | None, device: str = "auto", *, max_length: int = 30,
                 num_beams: int = 3):
        from curate.models.clip import load_clip

        # fp32 weights: open_clip's fp16 conversion leaves CoCa's decoder with mixed LayerNorm dtypes;
        # on a GPU the decoding runs under autocast instead (see coca_generate)
        self.clip = load_clip(model, pretrained, device, precision="fp32")
        self.max_length = max_length
        self.num_beams = num_beams

    def caption(self, images: Sequence[bytes | None], *, batch_size: int = 16) -> list[str | None]:
        out: list[str | None] = [None] * len(images)
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            pixels, ok = decode_images(chunk, self.clip.preprocess)
            if pixels is None:
                continue
            pixels = pixels.to(self.clip.device, dtype=self.clip.dtype)
            tokens = coca_generate(self.clip.model, pixels, max_length=self.max_length, num_beams=self.num_beams)
            for i, toks in zip(ok, tokens):
                out[start + i] = decode_tokens(toks)
        return out
