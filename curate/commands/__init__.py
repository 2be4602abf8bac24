"""Extra CLI command modules. Each module here defines ``register(main: click.Group)``; the CLI
imports them all, so a feature adds its commands without editing ``curate/cli.py``. Modules without
``register`` (helpers of a command) are skipped."""

from __future__ import annotations

import importlib
import pkgutil


def register_all(group) -> None:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            register = getattr(importlib.import_module(f"{__name__}.{info.name}"), "register", None)
            if register is not None:
                register(group)
