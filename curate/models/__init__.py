"""Model loading shared by every model-backed stage (embeddings, CLIP score, captioning, label noise).

Public API (all imports of torch/open_clip happen inside the functions)::

    from curate.models import load_clip, load_text_encoder, select_device
    clip = load_clip("ViT-B-32", "laion2b_s34b_b79k", device="auto")   # -> ClipModel
    clip.model, clip.preprocess, clip.tokenizer                          # open_clip's own objects
    clip.encode_texts(["a dog"]); clip.encode_images([pil_image])        # L2-normalised numpy (N, D)
    text = load_text_encoder("all-MiniLM-L6-v2")                         # -> TextEncoder
    from curate.models.testing import write_tiny_clip                    # tiny local-dir model for tests
"""

from curate.models.clip import (
    LOCAL_DIR,
    ClipModel,
    ClipSource,
    cached_weights,
    fetch_weights,
    how_to_provide,
    list_architectures,
    load_clip,
    pretrained_tags,
    resolve_clip_source,
)
from curate.models.device import pick_device, pick_precision, select_device, select_precision
from curate.models.text import TextEncoder, load_text_encoder, resolve_text_model

__all__ = [
    "LOCAL_DIR", "ClipModel", "ClipSource", "TextEncoder", "cached_weights", "fetch_weights", "how_to_provide",
    "list_architectures", "load_clip", "load_text_encoder", "pick_device", "pick_precision", "pretrained_tags",
    "resolve_clip_source", "resolve_text_model", "select_device", "select_precision",
]
