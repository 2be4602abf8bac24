"""Loading open_clip models by name: a pretrained tag, a local checkpoint file, ``local-dir:PATH`` or
random weights, on a chosen device and precision, with errors that say how to provide missing weights.

Nothing here downloads at import time; :func:`load_clip` downloads a tag's weights through open_clip
only when they are not in its cache and ``allow_download`` is true.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from curate.errors import CurateError, require
from curate.models.device import select_device, select_precision, torch_dtype

log = logging.getLogger(__name__)

LOCAL_DIR = "local-dir:"
#: ``pretrained`` values that mean "random weights" (for speed benchmarks and tests).
RANDOM_WEIGHTS = ("none", "random")
#: Seed of random-weight models, so every worker process builds the same model.
RANDOM_SEED = 0
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".npz")


def _open_clip():
    return require("open_clip", "clip", "CLIP embeddings (open-clip-torch)")


@dataclass(frozen=True)
class ClipSource:
    """Where a model's config and weights come from.

    ``kind`` is ``tag`` (an open_clip pretrained tag), ``file`` (a checkpoint file), ``local-dir``
    (config + weights in a folder) or ``random``. ``identity`` names the weights for caching: the same
    identity means the same embeddings.
    """

    model: str
    pretrained: str | None
    kind: str
    identity: str
    open_clip_name: str
    checkpoint: str | None = None


def _file_identity(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def list_architectures() -> list[str]:
    """Model names open_clip knows (``ViT-B-32``, ``ViT-L-14``, ...)."""
    return list(_open_clip().list_models())


def pretrained_tags(model: str) -> list[str]:
    """Pretrained tags open_clip knows for ``model``."""
    return list(_open_clip().list_pretrained_tags_by_model(model))


def resolve_clip_source(model: str, pretrained: str | None) -> ClipSource:
    """Check that ``model``/``pretrained`` name something loadable, without loading it.

    Raises :class:`curate.errors.CurateError` naming the available architectures or tags.
    """
    model = str(model).strip()
    pre = None if pretrained is None else str(pretrained).strip()
    if pre is not None and pre.lower() in (*RANDOM_WEIGHTS, ""):
        pre = None
    if model.startswith(LOCAL_DIR):
        folder = Path(model[len(LOCAL_DIR):]).expanduser()
        cfg = folder / "open_clip_config.json"
        if not folder.is_dir():
            raise CurateError(f"model: {model!r}: no such folder ({folder.absolute()})")
        if not cfg.is_file():
            raise CurateError(f"model: {model!r}: the folder has no open_clip_config.json "
                              "(a local-dir: model needs open_clip_config.json and a weights file)")
        weights = sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())
        if pre is not None:
            raise CurateError(f"pretrained: {pretrained!r} cannot be combined with model: {model!r}; "
                              "a local-dir: model takes its weights from the folder (leave pretrained out)")
        if not weights:
            raise CurateError(f"model: {model!r}: no weights file (.safetensors, .bin, .pt, .pth) in {folder}")
        ident = f"local-dir:{folder.resolve()}|" + "|".join(_file_identity(w) for w in weights) + f"|{_file_identity(cfg)}"
        return ClipSource(model, None, "local-dir", ident, f"{LOCAL_DIR}{folder.resolve()}")
    archs = list_architectures()
    name = model.replace("/", "-")
    if name not in archs:
        hint = difflib.get_close_matches(name, archs, n=3)
        raise CurateError(f"model: unknown open_clip architecture {model!r}"
                          + (f" (did you mean {', '.join(map(repr, hint))}?)" if hint else "")
                          + "; list them with 'curate models list', or use model: local-dir:PATH")
    if pre is None:
        return ClipSource(name, None, "random", f"{name}|random-seed{RANDOM_SEED}", name)
    tags = pretrained_tags(name)
    if pre in tags or pre.lower() in tags:
        tag = pre if pre in tags else pre.lower()
        return ClipSource(name, tag, "tag", f"{name}|{tag}", name)
    path = Path(pre).expanduser()
    if path.is_file():
        return ClipSource(name, str(path.resolve()), "file", f"{name}|file:{_file_identity(path)}", name,
                          checkpoint=str(path.resolve()))
    looks_like_path = os.sep in pre or pre.endswith(WEIGHT_SUFFIXES)
    if looks_like_path:
        raise CurateError(f"pretrained: checkpoint file {pre!r} does not exist (resolved to {path.absolute()})")
    hint = difflib.get_close_matches(pre, tags, n=1)
    raise CurateError(f"pretrained: {pre!r} is neither a pretrained tag of {name} nor a checkpoint file"
                      + (f" (did you mean {hint[0]!r}?)" if hint else "")
                      + f"; tags of {name}: {', '.join(tags) or 'none'}; or use pretrained: none for random weights")


# -- open_clip's cache ------------------------------------------------------------------------------
def _tag_files(model: str, tag: str) -> list[tuple[str, str | None, str]]:
    """Where open_clip would cache ``model``/``tag``: (kind, repo or url, filename) candidates."""
    oc = _open_clip()
    cfg = oc.get_pretrained_cfg(model, tag) or {}
    out = []
    if cfg.get("hf_hub"):
        repo, filename = os.path.split(cfg["hf_hub"])
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename and filename.endswith((".bin", ".pth")):
            names.insert(0, filename[:-4] + ".safetensors")
        out += [("hf", repo, n) for n in names]
    if cfg.get("url"):
        out.append(("url", cfg["url"], os.path.basename(cfg["url"])))
    return out


def cached_weights(model: str, tag: str) -> str | None:
    """The local path of ``model``/``tag``'s weights if open_clip's cache holds them, else ``None``."""
    for kind, where, filename in _tag_files(model, tag):
        if kind == "hf":
            try:
                from huggingface_hub import try_to_load_from_cache
            except ImportError:  # pragma: no cover - huggingface_hub comes with open_clip
                continue
            hit = try_to_load_from_cache(where, filename)
            if isinstance(hit, str) and os.path.isfile(hit):
                return hit
        else:
            p = Path(os.path.expanduser("~/.cache/clip")) / filename
            if p.is_file():
                return str(p)
    return None


def how_to_provide(model: str, tag: str | None) -> str:
    """The advice printed when weights are missing."""
    fetch = f"'curate models fetch {model} {tag}'" if tag else "'curate models fetch MODEL TAG'"
    return (f"run {fetch} on a machine with network (it fills open_clip's cache), or set pretrained: to a "
            "local checkpoint file (.safetensors/.bin/.pt), or use model: local-dir:PATH with "
            "open_clip_config.json and weights in PATH")


def hub_unreachable(host: str | None = None, timeout: float = 3.0) -> str | None:
    """``None`` if ``host`` (default: the Hugging Face hub, or ``HF_ENDPOINT``) answers or a proxy is
    configured, else why not. A quick probe, so that an offline machine gets a clear answer at once
    instead of minutes of retries."""
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    if host is None:
        host = (urlparse(os.environ["HF_ENDPOINT"]).hostname if os.environ.get("HF_ENDPOINT") else None) or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError as exc:
        return f"no network: cannot reach {host} ({exc})"
    return None


def _reachable(model: str, tag: str, timeout: float = 3.0) -> str | None:
    """:func:`hub_unreachable` for the host serving open_clip's ``model``/``tag``."""
    from urllib.parse import urlparse

    files = _tag_files(model, tag)
    host = urlparse(files[0][1]).hostname if files and files[0][0] == "url" else None
    return hub_unreachable(host, timeout)


def fetch_weights(model: str, tag: str) -> str:
    """Download ``model``/``tag`` into open_clip's cache; returns the local path.

    Raises :class:`CurateError` with :func:`how_to_provide` advice where the download fails."""
    src = resolve_clip_source(model, tag)
    if src.kind != "tag":
        raise CurateError(f"{tag!r} is not a pretrained tag of {model}; tags: {', '.join(pretrained_tags(src.model))}")
    hit = cached_weights(src.model, src.pretrained)
    if hit:
        return hit
    oc = _open_clip()
    why = _reachable(src.model, src.pretrained)
    if why:
        raise CurateError(f"cannot download {src.model} weights {src.pretrained!r}: {why}. Offline, set the embed stage's "
                          "pretrained: to a local checkpoint file (.safetensors/.bin/.pt) or use model: local-dir:PATH "
                          "(open_clip_config.json + weights); or run this fetch where there is network and copy "
                          "the cache (~/.cache/huggingface, ~/.cache/clip)")
    try:
        return oc.download_pretrained(oc.get_pretrained_cfg(src.model, src.pretrained))
    except Exception as exc:  # network errors come in many types (OSError, HTTPError, HF hub errors)
        raise CurateError(f"could not download {src.model} weights {src.pretrained!r} "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); "
                          + how_to_provide(src.model, None).replace("run 'curate models fetch MODEL TAG' on",
                                                                    "download them on")) from None


# -- the loaded model ---------------------------------------------------------------------------------
@dataclass
class ClipModel:
    """A loaded open_clip model in eval mode, with what the embedding code needs to feed it.

    ``preprocess`` is open_clip's own PIL -> tensor transform; ``pil_transform`` is its part before
    ``ToTensor`` (resize, crop), so image workers can send uint8 pixels and the normalisation
    (``mean``/``std``) runs on the device (see :meth:`encode_pixels`).
    """

    model: Any
    preprocess: Any
    tokenizer: Any
    source: ClipSource
    device: str
    precision: str
    embed_dim: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pil_transform: Any = None
    _norm: Any = field(default=None, repr=False)

    @property
    def dtype(self):
        return torch_dtype(self.precision)

    def __iter__(self):
        """``model, preprocess, tokenizer = load_clip(...)`` works too."""
        return iter((self.model, self.preprocess, self.tokenizer))

    def _mean_std(self):
        import torch

        if self._norm is None:
            mean = torch.tensor(self.mean, device=self.device, dtype=torch.float32).view(1, -1, 1, 1) * 255.0
            std = torch.tensor(self.std, device=self.device, dtype=torch.float32).view(1, -1, 1, 1) * 255.0
            self._norm = (mean, std)
        return self._norm

    def encode_pixels(self, pixels, *, to_numpy: bool = True):
        """Image embeddings of uint8 pixels ``(B, H, W, 3)`` (numpy or tensor), L2-normalised.

        Returns a float32 array ``(B, D)`` (or a device tensor with ``to_numpy=False``, which lets the
        caller keep the device busy while it prepares the next batch)."""
        import torch

        with torch.inference_mode():
            if isinstance(pixels, np.ndarray) and not pixels.flags.writeable:
                pixels = np.array(pixels)
            x = torch.as_tensor(pixels)
            x = x.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
            mean, std = self._mean_std()
            x = ((x - mean) / std).to(self.dtype)
            feats = self.model.encode_image(x)
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy() if to_numpy else feats

    def encode_images(self, images: Sequence, *, to_numpy: bool = True):
        """Image embeddings of PIL images (open_clip's own ``preprocess``), L2-normalised ``(B, D)``."""
        import torch

        with torch.inference_mode():
            x = torch.stack([self.preprocess(im) for im in images]).to(self.device, dtype=self.dtype)
            feats = torch.nn.functional.normalize(self.model.encode_image(x).float(), dim=-1)
        return feats.cpu().numpy() if to_numpy else feats

    def encode_texts(self, texts: Sequence[str], *, to_numpy: bool = True):
        """Text embeddings, L2-normalised ``(B, D)`` float32."""
        import torch

        with torch.inference_mode():
            tokens = self.tokenizer(list(texts)).to(self.device)
            feats = torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1)
        return feats.cpu().numpy() if to_numpy else feats


def _split_transform(preprocess):
    """open_clip's eval Compose split into (the PIL steps before ToTensor, ok)."""
    from torchvision import transforms as T

    steps = list(getattr(preprocess, "transforms", []))
    names = [type(s).__name__ for s in steps]
    if "MaybeToTensor" in names or "ToTensor" in names:
        cut = names.index("MaybeToTensor") if "MaybeToTensor" in names else names.index("ToTensor")
        rest = names[cut + 1:]
        if rest == ["Normalize"]:
            pil = [s for s in steps[:cut] if type(s).__name__ not in ("MaybeConvertMode", "_convert_to_rgb")]
            return T.Compose(pil), True
    return None, False


def load_clip(model: str, pretrained: str | None = None, device: str = "auto", *, precision: str = "auto",
              allow_download: bool = True) -> ClipModel:
    """Load an open_clip model for inference.

    Parameters
    ----------
    model : str
        An open_clip architecture (``ViT-B-32``) or ``local-dir:PATH`` (config + weights in PATH).
    pretrained : str or None
        A pretrained tag of ``model`` (``laion2b_s34b_b79k``; from open_clip's cache, downloaded where
        there is network), a checkpoint file, or ``None``/``'none'`` for random weights (seeded, so every
        process builds the same model).
    device : {'auto', 'cpu', 'cuda', 'cuda:N', 'mps'}
    precision : {'auto', 'fp32', 'fp16', 'bf16'}
    allow_download : bool
        If false, a tag missing from the cache is an error instead of a download.

    Returns
    -------
    ClipModel
    """
    src = resolve_clip_source(model, pretrained)
    oc = _open_clip()
    torch = require("torch", "clip", "CLIP embeddings")
    dev = select_device(device)
    prec = select_precision(precision, dev)
    pretrained_arg = None
    if src.kind == "tag":
        hit = cached_weights(src.model, src.pretrained)
        if hit:
            pretrained_arg = hit
        elif not allow_download:
            raise CurateError(f"pretrained: {src.pretrained!r} weights of {src.model} are not in open_clip's cache; "
                              + how_to_provide(src.model, src.pretrained))
        else:
            pretrained_arg = fetch_weights(src.model, src.pretrained)
    elif src.kind == "file":
        pretrained_arg = src.checkpoint
    oc_precision = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}[prec]
    if src.kind == "random":
        log.warning("model %s: no pretrained weights (pretrained: none): random weights, seed %d; fine for speed "
                    "measurements, meaningless for filtering", src.model, RANDOM_SEED)
        torch.manual_seed(RANDOM_SEED)
    pp_kw = {}
    if src.kind == "tag":  # the tag's mean/std/interpolation (open_clip applies them for tag names only)
        cfg = oc.get_pretrained_cfg(src.model, src.pretrained) or {}
        pp_kw = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg}
        if cfg.get("quick_gelu"):
            pp_kw["force_quick_gelu"] = True
    force_quick_gelu = pp_kw.pop("force_quick_gelu", False)
    try:
        net, _, preprocess = oc.create_model_and_transforms(
            src.open_clip_name, pretrained=pretrained_arg, precision=oc_precision, device=dev,
            force_quick_gelu=force_quick_gelu, **({"image_mean": pp_kw.get("mean"), "image_std": pp_kw.get("std"),
                                                   "image_interpolation": pp_kw.get("interpolation"),
                                                   "image_resize_mode": pp_kw.get("resize_mode")} if pp_kw else {}))
    except CurateError:
        raise
    except (RuntimeError, ValueError, KeyError, OSError) as exc:
        raise CurateError(f"could not load {model!r} (pretrained: {pretrained!r}): {str(exc).splitlines()[0][:300]}") from None
    if src.kind == "random":
        initialise_uninitialised(net)
    net.eval()
    tokenizer = oc.get_tokenizer(src.open_clip_name)
    pp = dict(getattr(net.visual, "preprocess_cfg", {}) or {})
    size = pp.get("size", getattr(net.visual, "image_size", 224))
    size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
    pil_transform, ok = _split_transform(preprocess)
    embed_dim = int((oc.get_model_config(src.open_clip_name) or {}).get("embed_dim", 0))
    cm = ClipModel(model=net, preprocess=preprocess, tokenizer=tokenizer, source=src, device=dev, precision=prec,
                   embed_dim=embed_dim, image_size=size, mean=tuple(pp.get("mean", (0.48145466, 0.4578275, 0.40821073))),
                   std=tuple(pp.get("std", (0.26862954, 0.26130258, 0.27577711))), pil_transform=pil_transform if ok else None)
    if not cm.embed_dim:
        cm.embed_dim = int(cm.encode_texts(["a"]).shape[-1])
    log.info("loaded %s (%s) on %s, %s, embedding dim %d", src.model, src.kind, dev, prec, cm.embed_dim)
    return cm



def initialise_uninitialised(net) -> list[str]:
    """Give a small random init to parameters that a freshly built open_clip model left uninitialised.

    Some towers allocate a parameter with ``torch.empty`` and never initialise it (CoCa's
    ``text_decoder.text_projection`` in open_clip 3.3): with random weights it holds whatever was in
    memory: NaN, 1e30, or all zeros (which silences the decoder). Returns the names it re-initialised. Loaded checkpoints overwrite
    every parameter, so this only matters for random-weight models (tests, speed benchmarks)."""
    import torch

    fixed = []
    with torch.no_grad():
        for name, p in net.named_parameters():
            if not (p.is_floating_point() and p.numel()):
                continue
            garbage = not torch.isfinite(p).all() or p.abs().max() > 1e3
            blank = p.dim() > 1 and not p.any()  # fresh pages of torch.empty are zeros: a dead projection
            if garbage or blank:
                torch.nn.init.normal_(p, std=(p.shape[0] ** -0.5) if p.dim() > 1 else 0.02)
                fixed.append(name)
    return fixed
