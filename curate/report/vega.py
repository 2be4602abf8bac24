"""The Vega, Vega-Lite and vega-embed JavaScript runtime, inlined into the report.

The runtime comes from ``vl-convert-python`` (the package Altair itself uses for offline HTML): it ships
the three libraries and bundles them into one classic script that defines ``vegaEmbed``. Bundling takes
a few seconds, so the result is kept on disk (``~/.cache/curate`` or ``$CURATE_CACHE``) per version.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from curate.errors import CurateError


def _cache_dir() -> Path:
    base = os.environ.get("CURATE_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "curate")
    return Path(base) / "report"


def versions() -> dict[str, str]:
    """Versions of the inlined libraries (shown in the report's footer)."""
    vlc = require_extra()
    return {"vega": vlc.get_vega_version(), "vega-lite": _vegalite_version(vlc),
            "vega-embed": vlc.get_vega_embed_version(), "vl-convert": getattr(vlc, "__version__", "?")}


def require_extra():
    """The ``vl_convert`` module, or a clear error naming the ``report`` extra (checked before any work)."""
    try:
        import altair  # noqa: F401
        import vl_convert
    except ImportError as exc:
        raise CurateError(f"the report needs the 'report' extra ({exc.name} is missing); "
                          "install it with: pip install 'curate[report]'") from None
    return vl_convert


def _vegalite_version(vlc) -> str:
    """The Vega-Lite version Altair writes specs for, as vl-convert names it (``6.4``)."""
    import altair

    major, minor = altair.SCHEMA_VERSION.lstrip("v").split(".")[:2]
    wanted = f"{major}.{minor}"
    known = list(vlc.get_vegalite_versions())
    return wanted if wanted in known else known[-1]


@functools.lru_cache(maxsize=1)
def runtime_js() -> str:
    """One script defining the global ``vegaEmbed`` (Vega + Vega-Lite + vega-embed), about 0.9 MB."""
    vlc = require_extra()
    vl_version = _vegalite_version(vlc)
    key = f"vega-bundle-{getattr(vlc, '__version__', 'x')}-{vl_version}.js"
    path = _cache_dir() / key
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    js = vlc.javascript_bundle(vl_version=vl_version)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(js, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:  # a read-only home is fine: bundle again next time
        pass
    return js
