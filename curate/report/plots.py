"""The report's charts, as Vega-Lite specs built with Altair (rendered in the page by the inlined runtime).

Every function takes plain Python data already reduced to what is drawn (histogram bins, counts), so a
spec stays a few kilobytes whatever the size of the run, and returns the spec as a dict.
"""

from __future__ import annotations

import math

from typing import Any, Sequence

import numpy as np

#: Colours of the three outcomes, used everywhere.
FATE_COLORS = {"kept": "#4c956c", "review": "#f4a259", "dropped": "#bc4b51"}
WIDTH = 520


def _alt():
    import altair as alt

    return alt


def _spec(chart) -> dict[str, Any]:
    # validate=False: Altair's JSON-schema check costs ~0.2 s a chart; the tests draw every chart in Chromium
    spec = chart.configure_view(stroke=None).configure_axis(labelLimit=260).to_dict(validate=False)
    spec.pop("$schema", None)
    return spec


def _df(rows: Sequence[dict]):
    import pandas as pd

    return pd.DataFrame(list(rows))


#: Shades per fate for the reasons inside it (darkest first).
_SHADES = {"kept": ["#2d6a4f", "#52b788", "#95d5b2", "#b7e4c7", "#d8f3dc"],
           "review": ["#e85d04", "#f48c06", "#faa307", "#ffba08", "#ffd166", "#ffe8a3"],
           "dropped": ["#9d0208", "#d00000", "#dc2f02", "#e85d75", "#f4a3a8", "#fbd3d6"]}


def outcome_bar(rows: Sequence[dict]) -> dict:
    """Where items went: one bar per final fate, split by the reason that decided it (shades of the fate's
    colour). ``rows``: ``{"fate": kept|review|dropped, "why": str, "items": int}``."""
    alt = _alt()
    df = _df(rows)
    domain, colors = [], []
    for fate, shades in _SHADES.items():
        whys = [r["why"] for r in sorted(rows, key=lambda r: -r["items"]) if r["fate"] == fate]
        for i, w in enumerate(dict.fromkeys(whys)):
            domain.append(w)
            colors.append(shades[min(i, len(shades) - 1)])
    chart = alt.Chart(df).mark_bar().encode(
        y=alt.Y("fate:N", sort=list(FATE_COLORS), title=None),
        x=alt.X("sum(items):Q", title="items", stack="zero"),
        color=alt.Color("why:N", title="decided by", scale=alt.Scale(domain=domain, range=colors),
                        legend=alt.Legend(orient="bottom", columns=2, labelLimit=320)),
        order=alt.Order("items:Q", sort="descending"),
        tooltip=[alt.Tooltip("fate:N"), alt.Tooltip("why:N", title="decided by"), alt.Tooltip("items:Q", format=",")],
    ).properties(width=WIDTH, height=30 * max(1, df["fate"].nunique()) if len(df) else 30,
                 title="Where the items went")
    return _spec(chart)


def stage_actions_bar(rows: Sequence[dict]) -> dict:
    """Flagged items per stage, stacked by the stage's action. ``rows``: ``{"stage", "action", "items"}``."""
    alt = _alt()
    colors = {"keep": FATE_COLORS["kept"], "review": FATE_COLORS["review"], "drop": FATE_COLORS["dropped"]}
    chart = alt.Chart(_df(rows)).mark_bar().encode(
        y=alt.Y("stage:N", sort=None, title=None),
        x=alt.X("sum(items):Q", title="flagged items"),
        color=alt.Color("action:N", scale=alt.Scale(domain=list(colors), range=list(colors.values())),
                        legend=alt.Legend(orient="bottom")),
        tooltip=["stage:N", "action:N", alt.Tooltip("items:Q", format=",")],
    ).properties(width=WIDTH, title="Flagged items by stage and action")
    return _spec(chart)


def bar(counts: dict[str, float], *, title: str, x: str = "items", y: str = "reason", fmt: str = ",",
        color: str = "#5c7cfa", sort: bool = True, width: int = WIDTH) -> dict:
    """A horizontal bar per key of ``counts``."""
    alt = _alt()
    rows = [{y: str(k), x: float(v)} for k, v in counts.items()]
    chart = alt.Chart(_df(rows)).mark_bar(color=color).encode(
        y=alt.Y(f"{y}:N", sort="-x" if sort else None, title=None),
        x=alt.X(f"{x}:Q", title=x),
        tooltip=[f"{y}:N", alt.Tooltip(f"{x}:Q", format=fmt)],
    ).properties(width=width, height=max(20, 18 * len(rows)), title=title)
    return _spec(chart)


def columns_chart(rows: Sequence[dict], *, x: str, y: str, title: str, x_title: str | None = None,
                  y_title: str | None = None, log_y: bool = False) -> dict:
    """Vertical bars over an ordinal x (e.g. the cluster-size distribution)."""
    alt = _alt()
    chart = alt.Chart(_df(rows)).mark_bar(color="#5c7cfa").encode(
        x=alt.X(f"{x}:O", title=x_title or x, sort=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y(f"{y}:Q", title=y_title or y, scale=alt.Scale(type="symlog") if log_y else alt.Undefined),
        tooltip=[f"{x}:O", alt.Tooltip(f"{y}:Q", format=",")],
    ).properties(width=WIDTH, height=180, title=title)
    return _spec(chart)


def histogram_bins(values: np.ndarray, cuts: Sequence[float] = (), bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of the finite ``values`` with every cut (threshold) as a bin edge, so each bin lies on one side."""
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(1)
    lo, hi = float(v.min()), float(v.max())
    for t in cuts:
        lo, hi = min(lo, t), max(hi, t)
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    inner = [t for t in cuts if lo < t < hi]
    if inner:
        edges = np.unique(np.concatenate([edges, inner]))
    counts, edges = np.histogram(v, bins=edges)
    return counts, edges


def score_histogram(values: np.ndarray, flagged: np.ndarray | None, *, title: str, score: str,
                    cuts: Sequence[dict] = ()) -> dict:
    """A histogram of one score, each bin split into the items flagged and the items that pass, with every
    known threshold drawn and its count.

    ``flagged``: per value, whether the stage flagged the item for this score (None: no flag uses it);
    ``cuts``: ``{"threshold", "flags_when": below|above, "flag", "flagged"}``."""
    alt = _alt()
    ts = [float(c["threshold"]) for c in cuts]
    finite = np.isfinite(values)
    _, edges = histogram_bins(values, ts)
    rows = []
    if len(edges) > 1:
        parts = [("passes", ~flagged), ("flagged", flagged)] if flagged is not None else [("all", np.ones_like(finite))]
        base = np.zeros(len(edges) - 1, dtype=np.int64)
        for side, mask in parts:
            counts, _ = np.histogram(values[finite & mask], bins=edges)
            for i, (c, a, b) in enumerate(zip(counts.tolist(), edges[:-1].tolist(), edges[1:].tolist())):
                if c:
                    rows.append({"start": a, "end": b, "lo": int(base[i]), "hi": int(base[i] + c), "items": c, "side": side})
            base += counts
    present = {r["side"] for r in rows}
    sides = {k: v for k, v in {"flagged": FATE_COLORS["dropped"], "passes": "#5c7cfa", "all": "#5c7cfa"}.items()
             if k in present} or {"all": "#5c7cfa"}
    tops = [r["hi"] for r in rows]
    # one bin holding most items would flatten the rest (the flagged tail): a symmetric log scale then
    skewed = len(tops) >= 2 and max(tops) > 0.5 * int(finite.sum())
    bars = alt.Chart(_df(rows) if rows else _df([{"start": 0, "end": 0, "lo": 0, "hi": 0, "items": 0, "side": "all"}])).mark_bar(
        binSpacing=0).encode(
        x=alt.X("start:Q", title=score, scale=alt.Scale(zero=False, nice=False)),
        x2="end:Q",
        y=alt.Y("hi:Q", title="items (log scale)" if skewed else "items",
                scale=alt.Scale(type="symlog") if skewed else alt.Undefined,
                axis=alt.Axis(values=[0] + [10 ** k for k in range(len(str(max(tops))))]) if skewed else alt.Undefined),
        y2="lo:Q",
        color=alt.Color("side:N", scale=alt.Scale(domain=list(sides), range=list(sides.values())),
                        legend=alt.Legend(orient="top", title=None) if flagged is not None else None),
        tooltip=[alt.Tooltip("side:N", title="items that"), alt.Tooltip("start:Q", format=".4g", title="from"),
                 alt.Tooltip("end:Q", format=".4g", title="to"), alt.Tooltip("items:Q", format=",")],
    )
    layers = [bars]
    if cuts:
        lo, hi = float(edges[0]), float(edges[-1])
        labels = [{"t": t, "pos": 2 + 14 * i, "label": f"{c['flag']}: {c['flags_when']} {t:.4g} → {c['flagged']:,} flagged",
                   "right": t > lo + 0.6 * (hi - lo)} for i, (t, c) in enumerate(zip(ts, cuts))]
        layers.append(alt.Chart(_df(labels)).mark_rule(color="#222", strokeDash=[4, 3], strokeWidth=2).encode(
            x="t:Q", tooltip=[alt.Tooltip("label:N", title="threshold")]))
        for right in (False, True):  # labels near the right edge are written to the left of their line
            part = [d for d in labels if d["right"] == right]
            if part:
                layers.append(alt.Chart(_df(part)).mark_text(
                    align="right" if right else "left", dx=-4 if right else 4, baseline="top", fontSize=11,
                    color="#222").encode(x="t:Q", y=alt.Y("pos:Q", scale=None), text="label:N"))
    chart = alt.layer(*layers).properties(width=WIDTH, height=170, title=title)
    return _spec(chart)


def heatmap(rows: Sequence[dict], *, x: str, y: str, value: str, title: str) -> dict:
    """A heat map (e.g. given label vs the label the model finds likely)."""
    alt = _alt()
    df = _df(rows)
    base = alt.Chart(df).encode(x=alt.X(f"{x}:N", title=x), y=alt.Y(f"{y}:N", title=y))
    chart = alt.layer(
        base.mark_rect().encode(color=alt.Color(f"{value}:Q", scale=alt.Scale(scheme="oranges"), title=value),
                                tooltip=[f"{y}:N", f"{x}:N", alt.Tooltip(f"{value}:Q", format=",")]),
        base.mark_text(fontSize=10).encode(text=alt.Text(f"{value}:Q", format=",")),
    ).properties(width=min(WIDTH, 36 * max(1, df[x].nunique() if len(df) else 1)),
                 height=min(420, 26 * max(1, df[y].nunique() if len(df) else 1)), title=title)
    return _spec(chart)


def grouped_bars(rows: Sequence[dict], *, category: str, series: str, value: str, title: str,
                 error_low: str | None = None, error_high: str | None = None, value_title: str | None = None) -> dict:
    """Bars of ``value`` per ``category``, one colour per ``series`` (e.g. eval arms), optional error bars."""
    alt = _alt()
    df = _df(rows)
    order = list(dict.fromkeys(df[series])) if len(df) else None
    base = alt.Chart(df).encode(y=alt.Y(f"{series}:N", title=None, sort=order))
    layers = [base.mark_bar().encode(x=alt.X(f"{value}:Q", title=value_title or value, scale=alt.Scale(zero=False)),
                                     color=alt.Color(f"{series}:N", legend=None,  # colours in series order,
                                                     scale=alt.Scale(domain=order) if order else alt.Undefined),
                                     tooltip=[f"{series}:N", f"{category}:N", alt.Tooltip(f"{value}:Q", format=".4g")])]
    if error_low and error_high and error_low in df and error_high in df:
        layers.append(base.mark_rule(color="#222").encode(x=f"{error_low}:Q", x2=f"{error_high}:Q"))
    chart = alt.layer(*layers).properties(width=WIDTH - 120, height=alt.Step(22)).facet(
        row=alt.Row(f"{category}:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left"))
    ).properties(title=title).resolve_scale(x="independent")
    return _spec(chart)


def curves(rows: Sequence[dict], *, title: str, y_title: str = "test accuracy", x_title: str = "epoch") -> dict:
    """One line per ``series`` over the epochs (e.g. eval arms' learning curves), in the rows' series order
    (the colours :func:`grouped_bars` gives the same series), with a band from ``low`` to ``high`` wherever
    they differ. ``rows``: ``{"series", "epoch", "value", "low", "high", "n"}``."""
    alt = _alt()
    df = _df(rows)
    order = list(dict.fromkeys(df["series"]))
    lo, hi = min(1.0, float(df["epoch"].min())), max(2.0, float(df["epoch"].max()))
    step = max(1, math.ceil((math.floor(hi) - math.ceil(lo)) / 10))  # whole epochs, at most ~10 ticks
    ticks = list(range(math.ceil(lo), math.floor(hi) + 1, step))  # explicit: fractional ticks would print twice
    x = alt.X("epoch:Q", title=x_title, scale=alt.Scale(domain=[lo, hi], nice=False),
              axis=alt.Axis(values=ticks, format="d"))
    color = alt.Color("series:N", title=None, sort=order, scale=alt.Scale(domain=order),
                      legend=alt.Legend(orient="right", labelLimit=260, labelFontSize=11, symbolType="stroke",
                                        symbolStrokeWidth=3, symbolOpacity=1))
    tooltip = [alt.Tooltip("series:N", title="arm"), alt.Tooltip("epoch:Q", title=x_title, format=".4~f"),
               alt.Tooltip("value:Q", format=".4f", title=y_title), alt.Tooltip("low:Q", format=".4f", title="min"),
               alt.Tooltip("high:Q", format=".4f", title="max"), alt.Tooltip("n:Q", title="seeds")]
    layers = []
    if (df["high"] > df["low"]).any():
        layers.append(alt.Chart(df).mark_area(opacity=0.12).encode(
            x=x, y="low:Q", y2="high:Q", color=color))  # the same legend (one, drawn opaque)
    layers.append(alt.Chart(df).mark_line(point=alt.OverlayMarkDef(size=24), strokeWidth=2).encode(
        x=x, y=alt.Y("value:Q", title=y_title, scale=alt.Scale(zero=False)), color=color, tooltip=tooltip))
    chart = alt.layer(*layers).properties(width=WIDTH, height=260, title=title)
    return _spec(chart)
