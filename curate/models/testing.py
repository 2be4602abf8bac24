"""Tiny random-weight open_clip models for offline tests and demos.

>>> from curate.models.testing import write_tiny_clip
>>> folder = write_tiny_clip(tmp_path / "tiny-clip")          # doctest: +SKIP
>>> # YAML: - embed: {model: "local-dir:<folder>"}

The weights are random but fixed by ``seed``, and saved next to the config, so every process that loads
the folder builds the same model (embeddings are meaningless, but deterministic).
"""

from __future__ import annotations

import json
from pathlib import Path

from curate.errors import require

TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def write_tiny_clip(folder: str | Path, *, seed: int = 0, image_size: int = 32, embed_dim: int = 32) -> Path:
    """Write ``open_clip_config.json`` and ``open_clip_model.safetensors`` of a tiny CLIP into ``folder``.

    Returns the folder; use it as ``model: local-dir:<folder>``. Takes about a second on a CPU."""
    torch = require("torch", "clip", "the tiny test CLIP model")
    oc = require("open_clip", "clip", "the tiny test CLIP model")
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = json.loads(json.dumps(TINY_CONFIG))
    cfg["embed_dim"] = embed_dim
    cfg["vision_cfg"]["image_size"] = image_size
    (folder / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": cfg,
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
                           "interpolation": "bicubic", "resize_mode": "shortest"},
    }, indent=2))
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = oc.CLIP(**cfg)
        with torch.no_grad():
            # at random init the shared class/position embeddings dominate and every image embeds alike
            # (cosine ~0.98); without them, different images get different embeddings
            model.visual.class_embedding.zero_()
            model.visual.positional_embedding.zero_()
            model.positional_embedding.zero_()
    finally:
        torch.random.set_rng_state(state)
    tensors = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(tensors, str(folder / "open_clip_model.safetensors"))
    return folder
