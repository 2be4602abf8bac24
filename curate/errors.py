"""Exception types. User mistakes raise these; the CLI prints them as one line, no traceback."""

from __future__ import annotations


class CurateError(Exception):
    """Base class for errors caused by input or configuration (not bugs)."""


class ConfigError(CurateError):
    """A pipeline YAML that does not validate. Each message names the YAML path."""

    def __init__(self, messages: list[str] | str):
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        super().__init__("\n".join(self.messages))


class InputError(CurateError):
    """The dataset cannot be read at all (missing path, unknown format, empty dataset)."""


class MissingDependencyError(CurateError):
    """An optional dependency is needed; the message names the extra to install."""


def require(module: str, extra: str, purpose: str):
    """Import ``module`` or raise a :class:`MissingDependencyError` naming the pip extra.

    >>> np = require("numpy", "base", "arrays")
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{purpose} needs the Python package '{module.split('.')[0]}', which is not installed "
            f"({exc}). Install it with: pip install 'curate[{extra}]'"
        ) from exc
