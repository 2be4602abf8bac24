"""Built-in stages. Every module in this package is imported on first use of the registry, so a new
stage only needs its own module with a ``@register_stage`` class (no list to edit)."""

from __future__ import annotations

import importlib
import pkgutil

from curate.stages.base import GlobalStage, MapStage, Stage, StageContext, StageParams, register_stage

__all__ = ["GlobalStage", "MapStage", "Stage", "StageContext", "StageParams", "register_stage", "load_builtin_stages"]

_loaded = False


def load_builtin_stages() -> None:
    """Import every module of ``curate.stages`` once (they must import heavy dependencies lazily)."""
    global _loaded
    if _loaded:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True
