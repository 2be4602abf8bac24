"""The review app's cards as HTML: thumbnail, the reason in words with the stage's title as a chip, the
score behind the flag with its threshold, a caption repair as a highlighted word diff, given vs.
suggested label.

One HTML block per grid (not one Streamlit element per line) keeps pages light in the browser. Every
piece of user or stage data goes through :func:`esc` (``html.escape``) before it is placed in the HTML:
captions, labels, details and notes are text, never markup (a caption ``<img src=x onerror=...>`` is
shown as those characters). Images are the run's own bytes, thumbnailed on the server, as ``data:`` URIs.
"""

from __future__ import annotations

import base64
import html

from curate.captions.worddiff import word_diff
from curate.review.roles import StageView, fmt_number, reason_words, score_text

STYLE = """<style>
[data-testid="stMainBlockContainer"],.block-container{padding-top:1.6rem;padding-bottom:2rem}
.cr-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(205px,1fr));gap:10px;margin:2px 0 6px}
.cr-card{border:1px solid rgba(128,128,128,.35);border-radius:8px;padding:8px;font-size:13.5px;line-height:1.35;
 overflow-wrap:anywhere;background:rgba(128,128,128,.04)}
.cr-grid>.cr-card{content-visibility:auto;contain-intrinsic-size:auto 300px}
.cr-card.cr-cur{border:2px solid #ff4b4b;box-shadow:0 0 0 2px rgba(255,75,75,.18)}
.cr-head{display:flex;gap:6px;align-items:center;margin-bottom:5px;flex-wrap:wrap}
.cr-num{font-weight:700;min-width:1.6em}
.cr-st{border-radius:9px;padding:0 7px;font-size:12px;border:1px solid rgba(128,128,128,.4)}
.cr-st.accepted{background:rgba(33,195,84,.18)}.cr-st.rejected{background:rgba(255,75,75,.2)}
.cr-thumb{width:100%;height:130px;object-fit:contain;background:rgba(128,128,128,.12);border-radius:4px;display:block}
.cr-big{width:100%;height:220px;object-fit:contain;background:rgba(128,128,128,.12);border-radius:4px;display:block}
.cr-noimg{height:60px;display:flex;align-items:center;justify-content:center;color:gray;
 background:rgba(128,128,128,.12);border-radius:4px}
.cr-flag{margin-top:5px}
.cr-chip{display:inline-block;border-radius:10px;padding:0 7px;font-size:12px;background:rgba(28,131,225,.15);
 border:1px solid rgba(28,131,225,.35);margin-right:4px;white-space:nowrap}
.cr-chip.cr-manual{background:rgba(255,164,33,.18);border-color:rgba(255,164,33,.5)}
.cr-why{font-weight:600}
.cr-score{font-family:ui-monospace,monospace;font-size:12.5px;margin-left:2px;white-space:nowrap}
.cr-detail{color:rgba(128,128,128,1);font-size:12.5px}
.cr-text{margin-top:6px;white-space:pre-wrap}
.cr-muted{color:gray}
.cr-label{margin-top:4px}
.cr-diff{margin-top:4px;white-space:pre-wrap}
.cr-diff del{background:rgba(255,75,75,.25);text-decoration:line-through}
.cr-diff ins{background:rgba(33,195,84,.28);text-decoration:none}
.cr-row{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.cr-row .cr-thumb{height:100px}
.cr-keep{font-weight:700;color:#21a354}
.cr-item{display:grid;grid-template-columns:minmax(180px,260px) 1fr;gap:14px;font-size:14.5px}
@media (max-width:900px){.cr-item{grid-template-columns:1fr}}
</style>"""


def esc(value) -> str:
    """User or stage data as HTML text (never markup)."""
    return html.escape("" if value is None else str(value), quote=True)


def data_uri(image: bytes | None) -> str | None:
    if not image:
        return None
    mime = "image/png" if image[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(image).decode('ascii')}"


def _img(image: bytes | None, cls: str = "cr-thumb") -> str:
    uri = data_uri(image)
    return f'<img class="{cls}" src="{uri}" alt="">' if uri else '<div class="cr-noimg">no image</div>'


def diff_html(original: str, repaired: str) -> str:
    """A caption repair as a word diff: removed words struck through, added ones highlighted."""
    out = []
    for op, text in word_diff(original, repaired):
        t = esc(text)
        out.append(t if op == "same" else f"<{op}>{t}</{op}>")
    return " ".join(out)


def flag_lines(rec: dict, stages: list[StageView]) -> list[dict]:
    """Each flag on the item: ``{stage, title, flag, words, score, detail, edit}`` (texts, not HTML)."""
    out = []
    for sv in stages:
        flag = rec.get(f"{sv.dir}:flag")
        if flag is None:
            continue
        spec = sv.score_for(flag)
        score = None
        if spec is not None:
            score = score_text(spec, rec.get(f"{sv.dir}.{spec.column}"), sv.threshold(spec))
        out.append({"stage": sv.dir, "title": sv.title, "flag": flag, "words": reason_words(flag), "score": score,
                    "detail": rec.get(f"{sv.dir}:detail"), "edit": sv.is_edit(flag),
                    "action": rec.get(f"{sv.dir}:action")})
    return out


def proposals(rec: dict, stages: list[StageView]) -> dict:
    """The item's proposed edits: ``{"caption": (stage dir, new text) | None, "label": (stage dir, label,
    confidence) | None}`` from the replacement_text / suggested_label roles."""
    caption = label = None
    for sv in stages:
        if "replacement_text" in sv.roles and caption is None:
            new = rec.get(sv.index_column("replacement_text"))
            if new is not None and new != rec.get("text"):
                caption = (sv.dir, new)
        if "suggested_label" in sv.roles and label is None:
            sug = rec.get(sv.index_column("suggested_label"))
            if sug is not None and sug != rec.get("label"):
                conf = rec.get(sv.index_column("label_confidence")) if "label_confidence" in sv.roles else None
                label = (sv.dir, sug, conf)
    return {"caption": caption, "label": label}


def _status(rec: dict) -> str:
    d = rec.get("decision")
    words = rec["status"]
    if d is not None and d.kind == "keeper":
        words = "kept instead" if d.decision == "accepted" else "dropped: duplicate"
    elif d is not None and d.kind == "not_duplicate":
        words = "not a duplicate"
    elif d is not None and d.kind == "flag" and d.decision == "pending":
        words = "flagged by hand"
    cls = rec["status"]
    return f'<span class="cr-st {cls}">{esc(words)}</span>'


def _body(rec: dict, stages: list[StageView], *, full: bool) -> str:
    parts = []
    prop = proposals(rec, stages)
    for f in flag_lines(rec, stages):
        line = f'<span class="cr-chip">{esc(f["title"])}</span><span class="cr-why">{esc(f["words"])}</span>'
        if f["score"]:
            line += f' <span class="cr-score">{esc(f["score"])}</span>'
        detail = None if f["edit"] and prop["caption"] is not None else f["detail"]  # the diff says it better
        if detail and (full or not f["score"]) and detail != f["score"]:
            line += f'<div class="cr-detail">{esc(detail)}</div>'
        parts.append(f'<div class="cr-flag">{line}</div>')
    if rec.get("manual"):
        parts.append(f'<div class="cr-flag"><span class="cr-chip cr-manual">Reviewer</span>'
                     f'<span class="cr-why">flagged by hand</span><div class="cr-detail">{esc(rec["manual"])}</div></div>')
    text = rec.get("text")
    if prop["caption"] is not None:
        parts.append(f'<div class="cr-diff">{diff_html(text or "", prop["caption"][1])}</div>')
    else:
        parts.append(f'<div class="cr-text">{esc(text)}</div>' if text is not None
                     else '<div class="cr-text cr-muted">(no text)</div>')
    if prop["label"] is not None:
        _, sug, conf = prop["label"]
        c = f" ({fmt_number(conf)})" if conf is not None else ""
        parts.append(f'<div class="cr-label">label <b>{esc(rec.get("label"))}</b> → suggested <b>{esc(sug)}</b>{esc(c)}</div>')
    elif rec.get("label") is not None:
        parts.append(f'<div class="cr-label">label <b>{esc(rec["label"])}</b></div>')
    d = rec.get("decision")
    if d is not None and d.note and d.kind != "flag":
        parts.append(f'<div class="cr-detail">note: {esc(d.note)}</div>')
    return "".join(parts)


def card_html(rec: dict, stages: list[StageView], *, number: int, thumb: bytes | None, current: bool = False,
              tag: str | None = None) -> str:
    """One grid card. ``tag`` is an extra chip (e.g. the random-sample stratum)."""
    head = f'<span class="cr-num">{number}</span>{_status(rec)}'
    if tag:
        head += f'<span class="cr-chip cr-manual">{esc(tag)}</span>'
    cls = "cr-card cr-cur" if current else "cr-card"
    return f'<div class="{cls}"><div class="cr-head">{head}</div>{_img(thumb)}{_body(rec, stages, full=False)}</div>'


def grid_html(cards: list[str], *, style: bool = True) -> str:
    """A page of cards. ``style``: include the cards' stylesheet (once per page is enough)."""
    return (STYLE if style else "") + '<div class="cr-grid">' + "".join(cards) + "</div>"


def item_html(rec: dict, stages: list[StageView], *, number: int, image: bytes | None, style: bool = True) -> str:
    """The current item, larger: image, every flag with its detail, caption (or the repair's diff), labels."""
    meta = f'{esc(rec.get("source"))} · {esc(rec.get("width"))}×{esc(rec.get("height"))} · id {esc(rec["id"])}'
    head = f'<div class="cr-head"><span class="cr-num">{number}</span>{_status(rec)}<span class="cr-detail">{meta}</span></div>'
    return ((STYLE if style else "") + f'<div class="cr-item"><div>{_img(image, "cr-big")}</div>'
            f'<div>{head}{_body(rec, stages, full=True)}</div></div>')


def cluster_html(members: list[dict], stages: list[StageView], thumbs: dict, *, keepers: set[int],
                 current: int | None = None, style: bool = True) -> str:
    """A duplicate group side by side: each member's thumbnail, the kept one marked, caption and flags."""
    cards = []
    for k, rec in enumerate(members, start=1):
        kept = rec["pos"] in keepers
        mark = '<span class="cr-keep">★ kept</span>' if kept else '<span class="cr-muted">duplicate</span>'
        cls = "cr-card cr-cur" if rec["pos"] == current else "cr-card"
        cards.append(f'<div class="{cls}"><div class="cr-head"><span class="cr-num">#{k}</span>{mark}{_status(rec)}</div>'
                     f'{_img(thumbs.get(rec["id"]))}{_body(rec, stages, full=False)}</div>')
    return (STYLE if style else "") + '<div class="cr-row">' + "".join(cards) + "</div>"
