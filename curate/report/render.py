"""Rendering the report: one Jinja2 template with autoescaping, our CSS and script, the Vega runtime,
and the chart specs and thumbnails as JSON data blocks, all inline."""

from __future__ import annotations

from importlib import resources

import jinja2
from markupsafe import Markup

from curate.report import vega
from curate.report.safety import CSP, inline_script, script_json


def _num(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.3g}"
    return f"{v:,}"


def _pct(v, of=None) -> str:
    if v is None:
        return "–"
    if of is not None:
        return "–" if not of else f"{100 * v / of:.1f}%"
    return f"{100 * v:.1f}%"


def _read(name: str) -> str:
    return resources.files("curate.report").joinpath("templates", name).read_text(encoding="utf-8")


def environment() -> jinja2.Environment:
    """The template environment: every value escaped, undefined names are errors."""
    env = jinja2.Environment(loader=jinja2.FunctionLoader(lambda n: _read(n)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _num
    env.filters["pct"] = _pct
    env.filters["short"] = lambda s: (s[:12] + "…") if isinstance(s, str) and len(s) > 13 else s
    return env


def render_report(context: dict, specs: dict[str, dict], thumbs: dict[int, str]) -> str:
    """The whole HTML document."""
    tpl = environment().get_template("report.html.j2")
    return tpl.render(**context, csp=CSP, css=Markup(_read("report.css")), thumbs=thumbs,
                      specs_json=script_json(specs), thumbs_json=script_json({str(k): v for k, v in thumbs.items()}),
                      vega_js=inline_script(vega.runtime_js()), report_js=inline_script(_read("report.js")))
