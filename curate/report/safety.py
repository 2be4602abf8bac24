"""Keeping the report inert: everything from the data is text, and the page can fetch nothing.

* HTML: the template engine escapes every value (Jinja2 ``autoescape``); nothing from a run is ever
  marked safe. Captions such as ``<img src=x onerror=...>`` show as typed.
* Data inside ``<script>`` blocks (plot specs, thumbnails, gallery pages) goes through
  :func:`script_json`, which escapes ``<``, ``>`` and ``&`` so no value can close the script element.
* The page carries a Content-Security-Policy that allows only inline styles, inline scripts and
  ``data:`` images: no request can leave the file, whatever a value contains.
"""

from __future__ import annotations

import json
import re
from typing import Any

from markupsafe import Markup

#: No network at all: inline scripts/styles, data: images. Vega compiles expressions with Function,
#: hence 'unsafe-eval'. connect-src/font-src/etc. fall back to default-src 'none'.
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       "script-src 'unsafe-inline' 'unsafe-eval'; base-uri 'none'; form-action 'none'")

_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_SCRIPT_RE = re.compile("[<>&\u2028\u2029]")


def script_json(obj: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` or JS context: no value can end the element."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_default)
    return Markup(_SCRIPT_RE.sub(lambda m: _SCRIPT_ESCAPES[m.group(0)], text))


def inline_script(js: str) -> Markup:
    """Trusted library code (the Vega runtime, our own script) for an inline ``<script>``."""
    if re.search(r"</script|<!--", js, re.IGNORECASE):
        js = re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE).replace("<!--", "<\\!--")
    return Markup(js)


def _default(o: Any):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
