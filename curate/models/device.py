"""Device and precision selection, shared by every model-backed stage.

``auto`` picks CUDA, then MPS (Apple), then CPU. Precision ``auto`` is fp16 on a GPU and fp32 on the CPU.
The pure functions :func:`pick_device` and :func:`pick_precision` take the hardware facts as arguments so
they can be tested on a machine without a GPU; :func:`select_device` asks torch.
"""

from __future__ import annotations

from typing import Literal

from curate.errors import CurateError, require

DeviceName = Literal["auto", "cpu", "cuda", "mps"]
PrecisionName = Literal["auto", "fp32", "fp16", "bf16"]


def pick_device(preference: str, *, cuda: bool, mps: bool) -> str:
    """Resolve a device preference given what is available.

    Parameters
    ----------
    preference : {'auto', 'cpu', 'cuda', 'cuda:N', 'mps'}
    cuda, mps : bool
        Whether torch can use a CUDA GPU / Apple's MPS backend here.

    Returns
    -------
    str
        A torch device string: ``'cuda'``, ``'cuda:1'``, ``'mps'`` or ``'cpu'``.
    """
    pref = (preference or "auto").strip().lower()
    if pref == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if pref == "cpu":
        return "cpu"
    if pref == "cuda" or pref.startswith("cuda:"):
        if not cuda:
            raise CurateError(f"device: {preference!r} was asked for but torch sees no CUDA GPU here; "
                              "use device: auto (CUDA, then MPS, then CPU) or device: cpu")
        return pref
    if pref == "mps":
        if not mps:
            raise CurateError("device: 'mps' was asked for but torch's MPS backend is not available here; "
                              "use device: auto or device: cpu")
        return "mps"
    raise CurateError(f"device: expected one of auto, cpu, cuda, cuda:N, mps, got {preference!r}")


def pick_precision(preference: str, device: str, *, bf16_supported: bool = True) -> str:
    """Resolve a precision preference for ``device``.

    Parameters
    ----------
    preference : {'auto', 'fp32', 'fp16', 'bf16'}
    device : str
        A resolved device (from :func:`pick_device`).
    bf16_supported : bool
        Whether the GPU supports bfloat16 (only consulted for ``bf16`` on CUDA).

    Returns
    -------
    {'fp32', 'fp16', 'bf16'}
        ``auto`` is ``fp16`` on CUDA and MPS and ``fp32`` on the CPU (half precision on a CPU is slower).
    """
    pref = (preference or "auto").lower()
    gpu = device.startswith("cuda") or device == "mps"
    if pref == "auto":
        return "fp16" if gpu else "fp32"
    if pref not in ("fp32", "fp16", "bf16"):
        raise CurateError(f"precision: expected one of auto, fp32, fp16, bf16, got {preference!r}")
    if pref == "fp16" and not gpu:
        raise CurateError("precision: fp16 needs a GPU (device is cpu); use precision: fp32 (or bf16)")
    if pref == "bf16" and device.startswith("cuda") and not bf16_supported:
        raise CurateError("precision: this GPU does not support bf16; use precision: fp16")
    return pref


def select_device(preference: str = "auto") -> str:
    """:func:`pick_device` with the facts from torch (imports torch)."""
    torch = require("torch", "clip", "running a model")
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return pick_device(preference, cuda=torch.cuda.is_available(), mps=mps)


def select_precision(preference: str, device: str) -> str:
    """:func:`pick_precision` with the facts from torch."""
    torch = require("torch", "clip", "running a model")
    bf16 = device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return pick_precision(preference, device, bf16_supported=bf16 or not device.startswith("cuda"))


def torch_dtype(precision: str):
    """The torch dtype for a resolved precision."""
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
