"""The Streamlit review app: accept or reject flagged items; every decision goes to ``review.db``.

Started by ``curate review RUN`` (which sets ``CURATE_REVIEW_RUN`` and ``CURATE_REVIEWER``); also
``streamlit run app/review.py -- RUN [REVIEWER]``. The queue logic lives in :mod:`curate.review`;
this module only draws it. User data (captions, labels, details, notes) is always drawn with
``st.text``/``st.dataframe``, never as Markdown or HTML.

Keyboard: A accept, X reject (R is reserved by Streamlit), J / K next / previous item,
N / P next / previous page, U undo.
"""

from __future__ import annotations

import getpass
import math
import os
import sys
from pathlib import Path

PAGE_SIZES = (12, 24, 48, 96)
VIEW_LABELS = {"review": "Review queue", "audit": "Audit: auto-dropped", "thresholds": "Thresholds"}


def _args() -> tuple[str, str]:
    run = os.environ.get("CURATE_REVIEW_RUN")
    reviewer = os.environ.get("CURATE_REVIEWER")
    argv = [a for a in sys.argv[1:] if not a.startswith("-")]
    if argv:
        run = argv[0]
        if len(argv) > 1:
            reviewer = argv[1]
    if not run:
        raise SystemExit("curate review: no run directory (use 'curate review RUN' or set CURATE_REVIEW_RUN)")
    return run, reviewer or _default_reviewer()


def _default_reviewer() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "reviewer"


# -- state helpers ---------------------------------------------------------------------------------
def _init_state(st, reviewer: str) -> None:
    ss = st.session_state
    defaults = {"page": 0, "cursor": 0, "undo_stack": [], "confirm": None, "message": None,
                "reviewer": reviewer, "view": "review", "f_stages": [], "f_reasons": [], "f_status": [],
                "f_score": None, "f_search": "", "f_sort": None, "f_desc": False, "page_size": 24,
                "card_buttons": False}
    for k, v in defaults.items():
        if k not in ss:
            ss[k] = v


def _reset_page(st) -> None:
    st.session_state.page = 0
    st.session_state.cursor = 0
    st.session_state.confirm = None


def _query(st, queue):
    from curate.review import Query

    ss = st.session_state
    view = ss.view if ss.view in ("review", "audit") else "review"
    q = Query(view=view, stages=list(ss.f_stages), reasons=list(ss.f_reasons), statuses=list(ss.f_status),
              score=ss.f_score, search=ss.f_search or "", sort=ss.f_sort, descending=bool(ss.f_desc))
    rng = ss.get("f_range")
    if q.score and rng is not None and ss.get("f_range_for") == q.score:
        q.score_min, q.score_max = float(rng[0]), float(rng[1])
    return q


# -- callbacks (run before the rerun draws the page) -------------------------------------------------
def _decide(st, queue, ids: list[str], decision: str, label: str, *, note=None, caption=None, advance=False,
            n_on_page: int = 0) -> None:
    ss = st.session_state
    extra = ss.get("current_extra") or {}
    if advance and ids == [extra.get("id")]:  # A / X: use the note and caption chosen in the item view
        note, caption = extra.get("note"), extra.get("caption")
    rows = queue.decide(ids, decision, reviewer=ss.reviewer or None, note=note, caption=caption)
    ss.undo_stack.append((label, rows))
    ss.message = f"{label}"
    ss.confirm = None
    if advance:
        _move(st, +1, n_on_page)


def _undo(st, queue) -> None:
    ss = st.session_state
    if not ss.undo_stack:
        ss.message = "Nothing to undo."
        return
    label, rows = ss.undo_stack.pop()
    _, skipped = queue.undo(rows, reviewer=ss.reviewer or None)
    ss.message = f"Undone: {label}" + (f" ({len(skipped)} item(s) decided again since by someone else were left alone)"
                                        if skipped else "")


def _move(st, step: int, n_on_page: int) -> None:
    ss = st.session_state
    cur = ss.cursor + step
    if cur >= n_on_page:
        if ss.get("has_next"):
            ss.page += 1
            ss.cursor = 0
        else:
            ss.cursor = max(n_on_page - 1, 0)
    elif cur < 0:
        if ss.page > 0:
            ss.page -= 1
            ss.cursor = ss.page_size - 1
        else:
            ss.cursor = 0
    else:
        ss.cursor = cur


def _turn(st, step: int, n_pages: int) -> None:
    ss = st.session_state
    ss.page = min(max(ss.page + step, 0), max(n_pages - 1, 0))
    ss.cursor = 0
    ss.confirm = None


def _ask_bulk(st, queue, decision: str, scope: str, what) -> None:
    """Ask for confirmation; ``what`` is the page's ids, or the Query whose matches to decide."""
    ids = what if isinstance(what, list) else queue.index["id"].to_numpy()[queue.select(what)].tolist()
    st.session_state.confirm = {"decision": decision, "scope": scope, "ids": ids}


# -- drawing -----------------------------------------------------------------------------------------
def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def _sidebar(st, queue, run_dir: str) -> None:
    ss = st.session_state
    with st.sidebar:
        st.header("curate review")
        st.text(f"run: {run_dir}")
        st.text_input("Reviewer", key="reviewer")
        st.radio("View", list(VIEW_LABELS), format_func=VIEW_LABELS.get, key="view", on_change=_reset_page, args=(st,))
        if ss.view == "thresholds":
            return
        st.subheader("Filters")
        st.multiselect("Stage", queue.stages_with_flags(ss.view), key="f_stages", on_change=_reset_page, args=(st,))
        reasons = queue.reasons(ss.view)
        options = [r for r in reasons if not ss.f_stages or r.split(":", 1)[0] in ss.f_stages]
        ss.f_reasons = [r for r in ss.f_reasons if r in options]
        st.multiselect("Reason", options, format_func=lambda r: f"{r} ({reasons.get(r, 0)})", key="f_reasons",
                       on_change=_reset_page, args=(st,))
        st.multiselect("Status", ["pending", "accepted", "rejected"], key="f_status", on_change=_reset_page, args=(st,))
        scores = queue.score_columns()
        st.selectbox("Score filter", [None, *scores], format_func=lambda c: "(none)" if c is None else c,
                     key="f_score", on_change=_reset_page, args=(st,))
        if ss.f_score:
            v = queue.index[ss.f_score].dropna()
            if len(v):
                lo, hi = float(v.min()), float(v.max())
                if lo == hi:
                    hi = lo + 1e-6
                if ss.get("f_range_for") != ss.f_score:
                    ss.f_range = (lo, hi)
                    ss.f_range_for = ss.f_score
                st.slider("Score range", lo, hi, key="f_range", on_change=_reset_page, args=(st,))
        st.text_input("Search text, label, id, reason", key="f_search", on_change=_reset_page, args=(st,))
        st.selectbox("Sort by", [None, *scores], format_func=lambda c: "run order" if c is None else c,
                     key="f_sort", on_change=_reset_page, args=(st,))
        st.checkbox("Descending", key="f_desc", on_change=_reset_page, args=(st,))
        st.selectbox("Items per page", PAGE_SIZES, key="page_size", on_change=_reset_page, args=(st,))
        st.checkbox("Accept / Reject buttons on every card", key="card_buttons",
                    help="Off: select a card with Open (or J/K) and decide with the buttons below or A/X; "
                         "fewer widgets make page turns faster.")
        st.caption("Keys: A accept · X reject · J/K next/previous item · N/P next/previous page · U undo")


def _progress(st, queue, view: str) -> None:
    prog = queue.progress(view)
    done, total = prog.pop("all")
    st.progress(done / total if total else 1.0, text=f"Reviewed {done:,} / {total:,}")
    if prog:
        with st.expander("Progress per stage"):
            for d, (dn, tt) in prog.items():
                st.progress(dn / tt if tt else 1.0, text=f"{d}: {dn:,} / {tt:,}")


def _card(st, queue, rec: dict, thumb, is_current: bool, i: int) -> None:
    with st.container(border=True):
        head = "▶ **current**  " if is_current else ""
        badge = {"pending": ":gray[pending]", "accepted": ":green[accepted]", "rejected": ":red[rejected]"}[rec["status"]]
        st.markdown(f"{head}{badge}")
        if thumb:
            st.image(thumb, width=180)
        else:
            st.text("(no image)")
        lines = [rec["text"] if rec.get("text") is not None else "(no text)"]
        if rec.get("chosen_caption"):
            lines.append(f"chosen caption: {rec['chosen_caption']}")
        if rec.get("label") is not None:
            lines.append(f"label: {rec['label']}")
        lines.append(rec["reasons"])
        if rec.get("details"):
            lines.append(rec["details"])
        scores = [f"{c}={_fmt(rec.get(c))}" for c in queue.score_columns() if rec.get(c) is not None]
        if scores:
            lines.append("  ".join(scores))
        if rec.get("note"):
            lines.append(f"note: {rec['note']}")
        st.text("\n".join(lines))  # one text block: user data is never Markdown/HTML
        if not st.session_state.card_buttons:  # one widget per card keeps page turns fast in the browser
            st.button("Open", key=f"open_{rec['id']}", on_click=lambda: st.session_state.update(cursor=i))
            return
        c1, c2, c3 = st.columns(3)
        c1.button("Accept", key=f"acc_{rec['id']}", on_click=_decide,
                  args=(st, queue, [rec["id"]], "accepted", f"accepted {rec['id'][:8]}"))
        c2.button("Reject", key=f"rej_{rec['id']}", on_click=_decide,
                  args=(st, queue, [rec["id"]], "rejected", f"rejected {rec['id'][:8]}"))
        c3.button("Open", key=f"open_{rec['id']}", on_click=lambda: st.session_state.update(cursor=i))


def _item_view(st, queue, rec: dict) -> None:
    from curate.review.queue import make_thumbnail

    d = queue.details(rec["pos"])
    r = d["record"]
    st.subheader("Item")
    left, right = st.columns([1, 2])
    with left:
        if r.get("image"):
            st.image(r["image"], width=360)
        else:
            st.text("(no image)")
    with right:
        st.text(f"id: {r['id']}\nsource: {r['source']}\nsize: {_fmt(r.get('width'))} x {_fmt(r.get('height'))}")
        st.text("caption:")
        st.text(r.get("text") if r.get("text") is not None else "(no text)")
        if r.get("label") is not None:
            st.text(f"label: {r['label']}")
        if r.get("meta"):
            st.text(f"meta: {r['meta']}")
    for s in d["suggestions"]:
        st.text(f"{s['stage']}: labelled {s['label']!s}, suggested label {s['suggested']!s}")
    caption_choice = None
    for c in d["captions"]:
        st.text(f"{c['stage']} suggests a repaired caption ({c['column']}):")
        st.text(f"original: {c['original']}\nrepaired: {c['repaired']}\ndiff:     {c['diff']}")
        options = ["original", "repaired"]
        chosen = st.radio("Caption to keep", options, horizontal=True,
                          index=1 if rec.get("chosen_caption") == c["repaired"] else 0,
                          key=f"cap_{rec['id']}_{c['stage']}")
        if chosen == "repaired":
            caption_choice = c["repaired"]
    for cl in d["clusters"]:
        st.text(f"{cl['stage']}: duplicate group {cl['column']}={cl['value']} ({len(cl['members'])} shown; ★ = representative)")
        cols = st.columns(min(len(cl["members"]), 6))
        for k, m in enumerate(cl["members"]):
            with cols[k % len(cols)]:
                thumb = make_thumbnail(m["image"]) if m["image"] else None
                if thumb:
                    st.image(thumb, width=160)
                mark = ("★ representative" if m["representative"] else "duplicate") + (" · this item" if m["this"] else "")
                st.text(f"{mark}\n{m['id'][:12]}")
                st.text(m["text"] if m["text"] is not None else "")
    rows = [(stage, k, _fmt(v)) for stage, vals in d["stages"].items() for k, v in vals.items() if v is not None]
    if rows:
        w0, w1 = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
        st.text("\n".join(f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows))
    note = st.text_input("Note (saved with the decision)", value=rec.get("note") or "", key=f"note_{rec['id']}")
    st.session_state.current_extra = {"id": rec["id"], "note": note or None, "caption": caption_choice}
    c1, c2 = st.columns(2)
    c1.button("Accept with note/caption", key=f"iacc_{rec['id']}", on_click=_decide,
              args=(st, queue, [rec["id"]], "accepted", f"accepted {rec['id'][:8]}"),
              kwargs={"note": note or None, "caption": caption_choice})
    c2.button("Reject with note", key=f"irej_{rec['id']}", on_click=_decide,
              args=(st, queue, [rec["id"]], "rejected", f"rejected {rec['id'][:8]}"),
              kwargs={"note": note or None, "caption": caption_choice})


def _queue_view(st, queue) -> None:
    ss = st.session_state
    q = _query(st, queue)
    _progress(st, queue, q.view)
    positions = queue.select(q)
    n = len(positions)
    size = int(ss.page_size)
    n_pages = max(math.ceil(n / size), 1)
    if ss.page >= n_pages:
        ss.page = n_pages - 1
    page_pos = queue.page(positions, ss.page, size)
    ss["has_next"] = ss.page < n_pages - 1
    if ss.cursor >= len(page_pos):
        ss.cursor = max(len(page_pos) - 1, 0)
    recs = queue.rows(page_pos)
    page_ids = [r["id"] for r in recs]

    nav = st.columns([1, 1, 2, 1, 1, 1, 1, 1])
    nav[0].button("◀ Page", key="prev_page", shortcut="P", on_click=_turn, args=(st, -1, n_pages), disabled=ss.page == 0)
    nav[1].button("Page ▶", key="next_page", shortcut="N", on_click=_turn, args=(st, +1, n_pages),
                  disabled=ss.page >= n_pages - 1)
    nav[2].markdown(f"page **{ss.page + 1}** of **{n_pages}** · **{n:,}** matching")
    nav[3].button("Undo", key="undo", shortcut="U", on_click=_undo, args=(st, queue), disabled=not ss.undo_stack)
    nav[4].button("Accept page", key="acc_page", on_click=_ask_bulk, args=(st, queue, "accepted", "page", page_ids),
                  disabled=not page_ids)
    nav[5].button("Reject page", key="rej_page", on_click=_ask_bulk, args=(st, queue, "rejected", "page", page_ids),
                  disabled=not page_ids)
    nav[6].button(f"Accept all {n:,}", key="acc_all", on_click=_ask_bulk, args=(st, queue, "accepted", "filter", q),
                  disabled=not n)
    nav[7].button(f"Reject all {n:,}", key="rej_all", on_click=_ask_bulk, args=(st, queue, "rejected", "filter", q),
                  disabled=not n)

    if ss.confirm:
        c = ss.confirm
        verb = "Accept" if c["decision"] == "accepted" else "Reject"
        what = "on this page" if c["scope"] == "page" else "matching the current filter"
        with st.container(border=True):
            st.warning(f"{verb} {len(c['ids']):,} items {what}?")
            b1, b2 = st.columns(2)
            b1.button(f"Confirm: {verb.lower()} {len(c['ids']):,}", key="confirm_bulk", type="primary", on_click=_decide,
                      args=(st, queue, c["ids"], c["decision"], f"{c['decision']} {len(c['ids']):,} items ({c['scope']})"))
            b2.button("Cancel", key="cancel_bulk", on_click=lambda: st.session_state.update(confirm=None))
    if ss.message:
        st.info(ss.message)

    if not recs:
        st.info("No items match." if n == 0 and (q.stages or q.reasons or q.statuses or q.search or q.score_min is not None)
                else "Nothing to review here.")
        return
    cur = recs[ss.cursor]
    keys = st.columns([1, 1, 1, 1, 4])
    keys[0].button("Accept current", key="acc_cur", shortcut="A", on_click=_decide,
                   args=(st, queue, [cur["id"]], "accepted", f"accepted {cur['id'][:8]}"),
                   kwargs={"advance": True, "n_on_page": len(recs)})
    keys[1].button("Reject current", key="rej_cur", shortcut="X", on_click=_decide,
                   args=(st, queue, [cur["id"]], "rejected", f"rejected {cur['id'][:8]}"),
                   kwargs={"advance": True, "n_on_page": len(recs)})
    keys[2].button("Previous item", key="prev_item", shortcut="K", on_click=_move, args=(st, -1, len(recs)))
    keys[3].button("Next item", key="next_item", shortcut="J", on_click=_move, args=(st, +1, len(recs)))
    keys[4].text(f"current: {ss.cursor + 1} of {len(recs)} on this page · {cur['id']}")

    thumbs = queue.thumbnails(page_pos)
    per_row = 4
    for start in range(0, len(recs), per_row):
        cols = st.columns(per_row)
        for j, rec in enumerate(recs[start:start + per_row]):
            with cols[j]:
                _card(st, queue, rec, thumbs.get(rec["id"]), start + j == ss.cursor, start + j)
    st.divider()
    _item_view(st, queue, cur)


def _thresholds_view(st, queue) -> None:
    import altair as alt
    import numpy as np
    import pandas as pd

    from curate.review import thresholds as th

    scores = queue.stage_scores()
    if not scores:
        st.info("No stage of this run writes a numeric score.")
        return
    stage = st.selectbox("Stage", list(scores), key="t_stage")
    col = st.selectbox("Score", scores[stage], key="t_col")
    entry = queue.stage_entry(stage)
    values = queue.stage_columns(stage, [col]).column(col).to_numpy(zero_copy_only=False).astype(np.float64)
    finite = values[np.isfinite(values)]
    if len(finite) == 0:
        st.info("This score has no values.")
        return
    params = th.numeric_params(entry.get("params", {}))
    guess = th.guess_param(col, entry.get("params", {}))
    param = st.selectbox("Pipeline parameter", [None, *params], index=(list(params).index(guess) + 1) if guess else 0,
                         format_func=lambda p: "(none)" if p is None else f"{p} (now {params[p]})", key=f"t_param_{stage}_{col}")
    above = st.radio("Flag items whose score is", ["below", "above"], horizontal=True,
                     index=1 if (param and th.flags_above(param)) else 0, key=f"t_dir_{stage}_{col}_{param}") == "above"
    lo, hi = float(finite.min()), float(finite.max())
    current = float(params[param]) if param else None
    if current is not None and math.isfinite(current):  # the slider also reaches the pipeline's value
        lo, hi = min(lo, current), max(hi, current)
    start = current if current is not None else (lo + hi) / 2
    value = st.slider("Threshold", lo, hi if hi > lo else lo + 1e-6, start, key=f"t_val_{stage}_{col}_{param}")
    n = th.would_flag(values, value, above=above)
    delta = None
    if current is not None:
        now = th.would_flag(values, current, above=above)
        delta = f"{n - now:+,} vs. {param}={current:g} ({now:,} items)"
    st.metric(f"Items flagged at {col} {'>' if above else '<'} {value:.4g}", f"{n:,} of {len(finite):,}",
              delta=delta, delta_color="off")
    counts, edges = th.histogram(values)
    hist = pd.DataFrame({"lo": edges[:-1], "hi": edges[1:], "count": counts, "zero": 0})
    bars = alt.Chart(hist).mark_bar().encode(x=alt.X("lo:Q", title=col, scale=alt.Scale(zero=False)), x2="hi:Q",
                                             y=alt.Y("count:Q", title="items"), y2="zero:Q")
    rule = alt.Chart(pd.DataFrame({"t": [value]})).mark_rule(color="red").encode(x="t:Q")
    st.altair_chart(bars + rule, width="stretch")
    if param:
        if st.button("Save as pipeline", key="t_save"):
            from curate.errors import CurateError

            try:
                path = th.save_pipeline(queue.run, int(entry["index"]), entry["name"], param, round(value, 6))
            except CurateError as exc:
                st.error(str(exc))
            else:
                st.success(f"Wrote {path}")
                st.code(f"curate run {path}", language="bash")
                st.download_button("Download YAML", path.read_bytes(), file_name=path.name, key="t_dl")


def render(run_dir: str, reviewer: str | None = None) -> None:
    """Draw the app for ``run_dir`` (one Streamlit script run)."""
    import streamlit as st

    from curate.errors import CurateError
    from curate.review import open_queue

    st.set_page_config(page_title="curate review", layout="wide")
    _init_state(st, reviewer or _default_reviewer())
    try:
        queue = open_queue(run_dir)
    except CurateError as exc:
        st.error(str(exc))
        return
    _sidebar(st, queue, run_dir)
    if st.session_state.view == "thresholds":
        _thresholds_view(st, queue)
    else:
        _queue_view(st, queue)


def main() -> None:
    run, reviewer = _args()
    render(str(Path(run)), reviewer)


if __name__ == "__main__":
    main()
