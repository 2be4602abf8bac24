"""The Streamlit review app: accept or reject items; every decision goes to ``review.db``.

Started by ``curate review RUN`` (which sets ``CURATE_REVIEW_RUN`` and ``CURATE_REVIEWER``); also
``streamlit run app/review.py -- RUN [REVIEWER]``. The queue logic lives in :mod:`curate.review`; this
module only draws it. Cards are one HTML block per grid built by :mod:`curate.review.cards`, where all
user data is escaped (text, never markup); notes, reasons and names typed here go to widgets or
``st.text``, never into Markdown.

Views: the review queue, the auto-dropped items (audit), every item (browse all: find what the stages
missed and flag it by hand), duplicate groups as a unit, a random-sample queue per flag, thresholds
learnt from the decisions, and the reviewers (split and agreement).

Keyboard: A accept, X reject (R is reserved by Streamlit), J / K next / previous item, N / P next /
previous page, U undo. The item area is a fragment: a page turn or a decision reruns only it.
"""

from __future__ import annotations

import getpass
import math
import os
import sys
from pathlib import Path

PAGE_SIZES = (12, 24, 48)
# 12: at 1280x800 the grid starts below the current item, and every card drawn costs the first page
# (docs/benchmarks/review.md); a reviewer who wants more picks 24 or 48 under Filters and sorting
DEFAULT_PAGE_SIZE = 12
VIEW_LABELS = {"review": "Review queue", "audit": "Auto-dropped", "all": "Browse all", "clusters": "Duplicate groups",
               "sample": "Random sample", "thresholds": "Thresholds", "team": "Reviewers"}
ITEM_VIEWS = ("review", "audit", "all", "sample")
THUMB, BIG = 224, 448


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


# -- state -------------------------------------------------------------------------------------------
def _init_state(st, reviewer: str) -> None:
    ss = st.session_state
    defaults = {"page": 0, "cursor": 0, "undo_stack": [], "confirm": None, "message": None,
                "reviewer": reviewer, "view": "review", "f_stages": [], "f_reasons": [], "f_status": [],
                "f_score": None, "f_search": "", "f_sort": None, "f_desc": False, "page_size": DEFAULT_PAGE_SIZE,
                "mine_only": False, "c_page": 0}
    for k, v in defaults.items():
        if k not in ss:
            ss[k] = v


def _reset_page(st) -> None:
    ss = st.session_state
    ss.page = ss.cursor = ss.c_page = 0
    ss.confirm = None


def _share(st, queue):
    """The reviewer's share of the items (a mask), when the queue is split and they asked for it."""
    from curate.review.reviewers import load_roster

    ss = st.session_state
    if not ss.mine_only:
        return None
    roster = load_roster(queue.run)
    return queue.share(ss.reviewer, roster["reviewers"], roster["overlap"])


def _query(st, queue):
    from curate.review import Query

    ss = st.session_state
    view = ss.view if ss.view in ("review", "audit", "all") else "review"
    q = Query(view=view, stages=list(ss.f_stages), reasons=list(ss.f_reasons), statuses=list(ss.f_status),
              score=ss.f_score, search=ss.f_search or "", sort=ss.f_sort, descending=bool(ss.f_desc),
              share=_share(st, queue))
    rng = ss.get("f_range")
    if q.score and rng is not None and ss.get("f_range_for") == q.score:
        q.score_min, q.score_max = float(rng[0]), float(rng[1])
    return q


# -- callbacks (they run before the rerun draws the page) -------------------------------------------
def _record(st, label: str, rows: list[int]) -> None:
    ss = st.session_state
    ss.undo_stack.append((label, rows))
    ss.message = label
    ss.confirm = None


def _decide(st, queue, ids: list[str], decision: str, label: str, *, note: str | None = None,
            caption: str | None = None, new_label: str | None = None) -> None:
    """A decision on items, with the note and the caption / label the reviewer kept (for one item)."""
    ss = st.session_state
    rows = queue.decide(ids, decision, reviewer=ss.reviewer or None, note=note, caption=caption, label=new_label)
    _record(st, label, rows)


def _decide_current(st, queue, rec: dict, decision: str, fields: dict, n_on_page: int) -> None:
    """Accept or reject the current item with the note and the choices made on it, then move on.
    Accepting an item accepts its proposed edits unless the reviewer picked the original."""
    from curate.review import cards

    prop = cards.proposals(rec, queue.stages)
    caption = new_label = None
    if prop["caption"] is not None:
        caption = prop["caption"][1] if fields.get("cap", "repaired") == "repaired" else (rec.get("text") or "")
    if prop["label"] is not None:
        new_label = prop["label"][1] if fields.get("lab", "suggested") == "suggested" else rec.get("label")
    item = rec["id"]
    _decide(st, queue, [item], decision, f"{decision} {item[:8]}", note=(fields.get("note") or "").strip() or None,
            caption=caption, new_label=new_label)
    _move(st, +1, n_on_page)


def _flag(st, queue, item: str, reason: str, reject: bool) -> None:
    from curate.errors import CurateError

    ss = st.session_state
    try:
        rows = queue.flag(item, reason or "", reject=reject, reviewer=ss.reviewer or None)
    except CurateError as exc:
        ss.message = str(exc)
        return
    _record(st, f"{'flagged and rejected' if reject else 'flagged for review'} {item[:8]}", rows)


def _keep_instead(st, queue, stage: str, pos: int) -> None:
    rows = queue.keep_instead(stage, pos, reviewer=st.session_state.reviewer or None)
    _record(st, f"kept {queue.ids[pos][:8]} instead of its duplicates", rows)


def _not_duplicates(st, queue, stage: str, pos: int) -> None:
    rows = queue.not_duplicates(stage, pos, reviewer=st.session_state.reviewer or None)
    _record(st, f"marked the group of {queue.ids[pos][:8]} as not duplicates", rows)


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


def _turn(st, key: str, step: int, n_pages: int) -> None:
    ss = st.session_state
    ss[key] = min(max(ss[key] + step, 0), max(n_pages - 1, 0))
    ss.cursor = 0
    ss.confirm = None


def _ask_bulk(st, queue, decision: str, scope: str, ids: list[str]) -> None:
    st.session_state.confirm = {"decision": decision, "scope": scope, "ids": ids}


def _group_act(st, queue, act: str, arg: str | None) -> bool:
    """A duplicate group's decision (``keep`` / ``notdup``, ``arg`` = "stage|position"); False if ``act`` is another."""
    if act not in ("keep", "notdup") or not arg:
        return False
    stage, pos = arg.rsplit("|", 1)
    (_keep_instead if act == "keep" else _not_duplicates)(st, queue, stage, int(pos))
    return True


def _nav_act(st, queue, act: str, key: str, n_pages: int) -> bool:
    """The page line's actions; False if ``act`` is another."""
    if act in ("prev_page", "next_page"):
        _turn(st, key, -1 if act == "prev_page" else +1, n_pages)
    elif act == "undo":
        _undo(st, queue)
    else:
        return False
    return True


# -- sidebar -------------------------------------------------------------------------------------------
def _side_act(st, queue, payload: dict) -> None:
    ss = st.session_state
    act, arg = payload["act"], payload.get("arg")
    if act == "view" and arg in VIEW_LABELS:
        ss.view = arg
        _reset_page(st)
    elif act == "reviewer":
        ss.reviewer = (arg or "").strip()
    elif act == "search":
        ss.f_search = arg or ""
        _reset_page(st)
    elif act == "mine":
        ss.mine_only = arg == "on"
        _reset_page(st)


def _sidebar(st, queue, run_dir: str) -> None:
    from curate.review import ui
    from curate.review.learn import learnable_reasons
    from curate.review.reviewers import load_roster

    ss = st.session_state
    items = ss.view in ("review", "audit", "all")
    parts = ["<h2>curate review</h2>", f"<div>run: {ui.esc(Path(run_dir).name)}</div>",
             ui.text_field("Reviewer", "reviewer", ss.reviewer or "", send="reviewer"),
             '<nav class="ui-views" aria-label="View">' + "".join(
                 ui.button(label, "view", arg=k, current=k == ss.view) for k, label in VIEW_LABELS.items()) + "</nav>"]
    if items:
        parts.append(ui.text_field("Search text, label, id, reason", "search", ss.f_search or "", send="search"))
        active = _active_filters(ss)
        if active:
            parts.append(f'<div class="ui-small">Filtered by: {ui.esc("; ".join(active))}</div>')
        if ss.reviewer in load_roster(queue.run)["reviewers"]:
            parts.append(ui.checkbox("Only my share of the queue", "mine", bool(ss.mine_only)))
        parts.append('<div class="ui-small">Keys: A accept · X reject · J/K next/previous item · '
                     "N/P next/previous page · U undo</div>")
    with st.sidebar:
        ui.mount(st, "side", '<div class="ui-side">' + "".join(parts) + "</div>", lambda p: _side_act(st, queue, p))
        if ss.view == "sample":
            reasons = learnable_reasons(queue)
            st.selectbox("Flag", reasons, key="s_reason", on_change=_reset_page, args=(st,),
                         help="Items drawn at random from those with this flag and from the unflagged ones just past "
                              "its threshold. Reject = the item is bad; accept = it is fine.")
        elif ss.view == "clusters":
            st.selectbox("Stage", queue.group_stages(), key="c_stage", on_change=_reset_page, args=(st,))
            st.radio("Groups", ["to review", "all"], key="c_which", horizontal=True, on_change=_reset_page, args=(st,))
        elif items:
            with st.popover("Filters and sorting", width="stretch"):  # its widgets are drawn when it opens
                _filters(st, queue)


def _filters(st, queue) -> None:
    ss = st.session_state
    view = "flagged" if ss.view == "all" else ss.view
    st.multiselect("Stage", queue.stages_with_flags(view), key="f_stages", on_change=_reset_page, args=(st,))
    reasons = dict(queue.reasons(view))
    if queue.manual.any():
        reasons["reviewer:flag"] = int(queue.manual.sum())
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
    st.selectbox("Sort by", [None, *scores], format_func=lambda c: "run order" if c is None else c,
                 key="f_sort", on_change=_reset_page, args=(st,))
    st.checkbox("Descending", key="f_desc", on_change=_reset_page, args=(st,))
    st.selectbox("Items per page", PAGE_SIZES, key="page_size", on_change=_reset_page, args=(st,))


def _active_filters(ss) -> list[str]:
    """The filters in force, in words (for the line under the Filters button)."""
    out = []
    for key, name in (("f_stages", "stage"), ("f_reasons", "reason"), ("f_status", "status")):
        if ss.get(key):
            out.append(f"{name} {', '.join(ss[key])}")
    if ss.get("f_score") and ss.get("f_range_for") == ss.f_score and ss.get("f_range") is not None:
        out.append(f"{ss.f_score} in [{ss.f_range[0]:.4g}, {ss.f_range[1]:.4g}]")
    if ss.get("f_sort"):
        out.append(f"sorted by {ss.f_sort}" + (" (descending)" if ss.get("f_desc") else ""))
    return out


# -- the item views (a fragment) --------------------------------------------------------------------------
def _positions(st, queue):
    """``(positions, tags, empty message)`` of the view."""
    ss = st.session_state
    if ss.view == "sample":
        from curate.review.learn import sample_queue

        reason = ss.get("s_reason")
        if not reason:
            return queue.ids[:0], None, "No flag with a declared score flagged anything in this run."
        stage, flag = reason.split(":", 1)
        s = sample_queue(queue, stage, flag)
        tags = {int(p): ("sample: flagged" if t == "flagged" else "sample: near threshold") for p, t in zip(s.positions, s.stratum)}
        return s.positions, tags, "Nothing to sample."
    q = _query(st, queue)
    filtered = bool(q.stages or q.reasons or q.statuses or q.search or q.score_min is not None)
    return queue.select(q), None, "No items match." if filtered else "Nothing to review here."


def _nav_html(st, page: int, n_pages: int, n: int, what: str, bulk: bool) -> str:
    """The page line: previous / next page, where we are, undo, (``bulk``) the bulk decisions' menu."""
    from curate.review import ui

    parts = [ui.button("◀ Page", "prev_page", key="P", disabled=page == 0),
             ui.button("Page ▶", "next_page", key="N", disabled=page >= n_pages - 1),
             f"<span>page <b>{page + 1:,}</b> of <b>{n_pages:,}</b> · <b>{n:,}</b> {ui.esc(what)}</span>",
             ui.button("Undo", "undo", key="U", disabled=not st.session_state.undo_stack)]
    if not bulk:
        return ui.row(*parts)
    parts.append(ui.button("Bulk decisions", menu="ui-bulk"))
    return ui.row(*parts) + ui.menu(
        "ui-bulk", ui.button("Accept this page", "bulk", arg="accepted|page"),
        ui.button("Reject this page", "bulk", arg="rejected|page"),
        ui.button(f"Accept all {n:,} matching", "bulk", arg="accepted|filter", disabled=not n),
        ui.button(f"Reject all {n:,} matching", "bulk", arg="rejected|filter", disabled=not n))


def _confirm_box(st, queue) -> None:
    c = st.session_state.confirm
    verb = "Accept" if c["decision"] == "accepted" else "Reject"
    what = "on this page" if c["scope"] == "page" else "matching the current filter"
    with st.container(border=True):
        st.warning(f"{verb} {len(c['ids']):,} items {what}?")
        with st.container(horizontal=True):
            st.button(f"Confirm: {verb.lower()} {len(c['ids']):,}", key="confirm_bulk", type="primary", on_click=_decide,
                      args=(st, queue, c["ids"], c["decision"], f"{c['decision']} {len(c['ids']):,} items ({c['scope']})"))
            st.button("Cancel", key="cancel_bulk", on_click=lambda: st.session_state.update(confirm=None))


def _progress_html(st, queue) -> str:
    from curate.review import ui

    ss = st.session_state
    if ss.view not in ("review", "audit"):
        return ""
    done, total = queue.progress(ss.view, _share(st, queue)).pop("all")
    return ui.progress(done, total)


def _items_act(st, queue, payload: dict, positions, recs: list[dict], n_pages: int) -> None:
    """What a click or key in the item area does (a callback: it runs before the rerun)."""
    ss = st.session_state
    act, arg, fields = payload["act"], payload.get("arg"), payload.get("fields") or {}
    n_on_page = len(recs)
    if _nav_act(st, queue, act, "page", n_pages) or _group_act(st, queue, act, arg):
        return
    if act == "bulk" and arg:
        decision, scope = arg.split("|")
        ids = [r["id"] for r in recs] if scope == "page" else queue.ids[positions].tolist()
        _ask_bulk(st, queue, decision, scope, ids)
    elif act == "pick" and arg is not None:
        ss.cursor = min(max(int(arg), 0), max(n_on_page - 1, 0))
    elif act in ("prev_item", "next_item"):
        _move(st, -1 if act == "prev_item" else +1, n_on_page)
    elif act == "details":
        ss.details_on = not ss.get("details_on")
    elif not recs:
        return
    elif act in ("accept", "reject"):
        _decide_current(st, queue, recs[ss.cursor], "accepted" if act == "accept" else "rejected", fields, n_on_page)
    elif act in ("flag_review", "flag_reject"):
        _flag(st, queue, recs[ss.cursor]["id"], fields.get("flag_reason") or "", act == "flag_reject")


def items_view(st, queue) -> None:
    """Progress, the page line, the current item with its decisions and the grid of cards: one element
    (drawn inside a fragment); the bulk confirmation, when asked, above it."""
    from curate.review import cards, ui

    ss = st.session_state
    positions, tags, empty = _positions(st, queue)
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
    ss["page_ids"] = [r["id"] for r in recs]  # what the page shows (read by tests and the benchmark)
    if ss.confirm:
        _confirm_box(st, queue)
    parts = [_progress_html(st, queue),
             _nav_html(st, ss.page, n_pages, n, "in the sample" if ss.view == "sample" else "matching", ss.view != "sample")]
    if ss.message:
        parts.append(ui.message(ss.message))
    if not recs:
        parts.append(ui.message(empty))
    else:
        cur = recs[ss.cursor]
        ss["current_id"] = cur["id"]
        first = ss.page * size
        parts.append(_current_html(st, queue, cur, first + ss.cursor + 1, len(recs), first))
        thumbs = queue.thumbnails(page_pos, THUMB)
        if ss.page + 1 < n_pages:  # the next page's thumbnails are ready before the reviewer gets there
            queue.prefetch_thumbnails(queue.page(positions, ss.page + 1, size), THUMB)
        grid = [cards.card_html(r, queue.stages, number=first + k + 1, thumb=thumbs.get(r["id"]), current=k == ss.cursor,
                                tag=tags.get(r["pos"]) if tags else None) for k, r in enumerate(recs)]
        # a card is a button of its own: a click makes it the current item
        grid = [c.replace('<div class="cr-card', f'<div data-act="pick" data-arg="{k}" title="make it the current item" '
                          'class="cr-card', 1) for k, c in enumerate(grid)]
        parts.append(cards.grid_html(grid, style=False))  # the current item above carries the stylesheet
    ui.mount(st, "items", "".join(parts), lambda p: _items_act(st, queue, p, positions, recs, n_pages))


def _current_html(st, queue, rec: dict, number: int, n_on_page: int, first: int) -> str:
    """The current item, larger, with the decisions on it: accept / reject (with the chosen caption, label
    and note), move, flag by hand, details, its duplicate group."""
    from curate.review import cards, ui

    ss = st.session_state
    item = rec["id"]
    big = queue.thumbnails([rec["pos"]], BIG).get(item)
    prop = cards.proposals(rec, queue.stages)
    d = rec.get("decision")
    details = bool(ss.get("details_on"))
    parts = [cards.item_html(rec, queue.stages, number=number, image=big),
             ui.row(ui.button("Accept", "accept", key="A", primary=True), ui.button("Reject", "reject", key="X"),
                    ui.button("◀ Item", "prev_item", key="K"), ui.button("Item ▶", "next_item", key="J"),
                    ui.button("Flag by hand", menu="ui-flag"),
                    ui.button("Hide details" if details else "Details", "details"),
                    f"<span>current: {number - first} of {n_on_page} on this page</span>"),
             ui.menu("ui-flag", ui.text_field("What is wrong with it?", "flag_reason",
                                              placeholder="e.g. watermark, wrong caption", cls="ui-note"),
                     ui.button("Flag for review", "flag_review"), ui.button("Flag and reject", "flag_reject"))]
    choices = []
    if prop["caption"] is not None:
        keep = "repaired" if (d is None or d.caption == prop["caption"][1]) else "original"
        choices.append(ui.choice("Caption to keep on accept", "cap", ["repaired", "original"], keep))
    if prop["label"] is not None:
        keep = "suggested" if (d is None or d.label == prop["label"][1]) else "given"
        choices.append(ui.choice("Label to keep on accept", "lab", ["suggested", "given"], keep))
    note = (d.note if d is not None and d.kind is None else "") or ""
    choices.append(ui.text_field("Note (saved with Accept / Reject)", "note", note, draft=f"note:{item}", cls="ui-note"))
    parts.append(ui.row(*choices))
    if details:
        det = queue.details(rec["pos"])
        lines = [f"{k}: {v}" for k, v in det["record"].items()]
        for stage, vals in det["stages"].items():
            lines += [f"{stage}.{k}: {v}" for k, v in vals.items() if v is not None]
        parts.append(f'<pre class="ui-details">{ui.esc(chr(10).join(lines))}</pre>')
    for stage in queue.group_stages():
        group = queue.group_of(stage, rec["pos"])
        if group is not None:
            parts.append(_group_html(queue, stage, group, current=rec["pos"], style=False))
    return '<div class="ui-box">' + "".join(parts) + "</div>"


def _group_html(queue, stage: str, group: dict, *, current: int | None, style: bool = True) -> str:
    """A duplicate group side by side with its decisions: keep another member instead, not duplicates."""
    from curate.review import cards, ui

    members = queue.rows(list(group["members"]))
    keepers = set(queue.keepers(stage, group))
    thumbs = queue.thumbnails(list(group["members"]), THUMB)
    sv = queue.by_dir[stage]
    buttons = [ui.button(f"Keep #{k} instead", "keep", arg=f"{stage}|{m['pos']}")
               for k, m in enumerate(members, start=1) if m["pos"] not in keepers]
    buttons.append(ui.button("These are not duplicates", "notdup", arg=f"{stage}|{members[0]['pos']}"))
    return (f"<div><b>Duplicate group</b> · {ui.esc(sv.title)} · {len(members)} items</div>"
            + cards.cluster_html(members, queue.stages, thumbs, keepers=keepers, current=current, style=style)
            + ui.row(*buttons))


def _clusters_act(st, queue, payload: dict, n_pages: int) -> None:
    _nav_act(st, queue, payload["act"], "c_page", n_pages) or _group_act(st, queue, payload["act"], payload.get("arg"))


def clusters_view(st, queue) -> None:
    from curate.review import ui

    ss = st.session_state
    stage = ss.get("c_stage")
    if not stage:
        st.info("No stage of this run declares duplicate groups.")
        return
    groups = queue.groups(stage)
    if ss.get("c_which", "to review") == "to review":
        review = queue.view_mask("flagged")
        keep = [bool(any(review[p] and queue.status[p] == 0 for p in m)) for m in groups["members"]]
        groups = groups[keep]
    per = 5
    n_pages = max(math.ceil(len(groups) / per), 1)
    ss.c_page = min(ss.c_page, n_pages - 1)
    parts = [_nav_html(st, ss.c_page, n_pages, len(groups), "groups", bulk=False)]
    if ss.message:
        parts.append(ui.message(ss.message))
    if groups.empty:
        parts.append(ui.message("No duplicate groups left to review." if ss.get("c_which", "to review") == "to review"
                                else "This stage found no duplicate groups."))
    for k, (_, g) in enumerate(groups.iloc[ss.c_page * per:(ss.c_page + 1) * per].iterrows()):
        parts.append('<div class="ui-box">' + _group_html(queue, stage, g.to_dict(), current=None, style=k == 0) + "</div>")
    ui.mount(st, "groups", "".join(parts), lambda p: _clusters_act(st, queue, p, n_pages))


# -- thresholds -------------------------------------------------------------------------------------------
def thresholds_view(st, queue) -> None:
    import altair as alt
    import pandas as pd

    from curate.errors import CurateError
    from curate.review import learn
    from curate.review import thresholds as th
    from curate.review.roles import fmt_number

    ss = st.session_state
    reasons = learn.learnable_reasons(queue)
    if not reasons:
        st.info("No flag of this run has a declared score.")
        return
    with st.container(horizontal=True, vertical_alignment="bottom"):
        reason = st.selectbox("Flag", reasons, key="t_reason", width=320)
        evidence = st.radio("Evidence", ["sample", "all"], key="t_evidence", horizontal=True,
                            format_func={"sample": "random sample (unbiased)", "all": "every decision"}.get)
        target = st.slider("Precision target", 0.5, 0.99, learn.DEFAULT_TARGET, 0.01, key="t_target", width=260)
    stage, flag = reason.split(":", 1)
    ev = learn.precision_evidence(queue, stage, flag, evidence=evidence, target=target)
    sv = queue.by_dir[stage]
    spec = sv.score_for(flag)
    dec = ev.get("decisions", {"rejected": 0, "accepted": 0})
    st.text(f"{sv.title}: {flag} when {ev['score_label']} is {spec.flags_when} {fmt_number(ev['threshold'])}"
            f" ({spec.param or 'computed cutoff'}) · {ev['flagged_items']:,} flagged · evidence: "
            f"{dec['rejected']} rejected, {dec['accepted']} accepted")
    path = learn.write_evidence(queue.run, ev)
    curve = pd.DataFrame(ev["curve"])
    if curve.empty or dec["rejected"] + dec["accepted"] == 0:
        st.info("No decisions yet on these items: review the random-sample queue of this flag "
                "(view 'Random sample') to estimate its precision.")
    else:
        x = alt.X("threshold:Q", title=f"threshold on {ev['score_label']}", scale=alt.Scale(zero=False))
        band = alt.Chart(curve).mark_area(opacity=0.25).encode(x=x, y=alt.Y("low:Q", title="estimated precision",
                                                                              scale=alt.Scale(domain=[0, 1])), y2="high:Q")
        line = alt.Chart(curve).mark_line(point=True).encode(x=x, y="precision:Q",
                                                              tooltip=["threshold", "precision", "low", "high", "flagged_items"])
        layers = [band, line, alt.Chart(pd.DataFrame({"y": [target]})).mark_rule(strokeDash=[4, 4]).encode(y="y:Q")]
        if ev["threshold"] is not None:
            layers.append(alt.Chart(pd.DataFrame({"t": [ev["threshold"]]})).mark_rule(color="gray").encode(x="t:Q"))
        if ev["suggested"]:
            layers.append(alt.Chart(pd.DataFrame({"t": [ev["suggested"]["threshold"]]})).mark_rule(color="red").encode(x="t:Q"))
        st.altair_chart(alt.layer(*layers), width="stretch")
    sug = ev["suggested"]
    if sug:
        st.success(f"Suggested threshold: {fmt_number(sug['threshold'])} flags {sug['flagged_items']:,} items at an "
                   f"estimated precision of {sug['precision']:.2f} (90% interval {sug['low']:.2f}–{sug['high']:.2f}); "
                   f"target {target:.2f}.")
    elif not curve.empty and dec["rejected"] + dec["accepted"]:
        st.warning(f"No threshold reaches precision {target:.2f} on the evidence so far (or its bins lack decisions).")
    st.caption(f"Evidence and suggestion written to {path.relative_to(queue.run.root)}")
    with st.expander("Bins"):
        st.dataframe(pd.DataFrame(ev["bins"]), hide_index=True)
    if spec.param:
        start = float(sug["threshold"]) if sug else (ev["threshold"] if ev["threshold"] is not None else 0.0)
        with st.container(horizontal=True, vertical_alignment="bottom"):
            value = st.number_input(f"{spec.param} to save", value=start, key=f"t_value_{reason}_{start}", width=220)
            values = queue.index[f"{stage}.{spec.column}"].to_numpy()
            n = th.would_flag(values, value, above=spec.flags_when == "above")
            st.text(f"{n:,} of {len(values):,} items have {ev['score_label']} {spec.flags_when} it")
            if st.button("Save as pipeline", key="t_save"):
                try:
                    out = th.save_pipeline(queue.run, sv.entry.index, sv.entry.name, spec.param, round(value, 6))
                except CurateError as exc:
                    st.error(str(exc))
                else:
                    learn.write_evidence(queue.run, ev, saved_pipeline=str(out))
                    ss.t_saved = str(out)
        if ss.get("t_saved"):
            st.text(f"Wrote {ss.t_saved}\nRun it with: curate run {ss.t_saved}")


# -- reviewers --------------------------------------------------------------------------------------------
def team_view(st, queue) -> None:
    import pandas as pd

    from curate.errors import CurateError
    from curate.review.reviewers import assignment, load_roster, save_roster, write_agreement

    ss = st.session_state
    roster = load_roster(queue.run)
    st.subheader("Split the queue")
    if "team_names" not in ss:
        ss.team_names = ", ".join(roster["reviewers"])
        ss.team_overlap = int(round(roster["overlap"] * 100))
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.text_input("Reviewers (comma-separated)", key="team_names", width=360)
        st.slider("Overlap (% of items reviewed twice)", 0, 50, key="team_overlap", width=260)
        if st.button("Save split", key="team_save"):
            try:
                save_roster(queue.run, [n for n in ss.team_names.split(",")], ss.team_overlap / 100)
            except CurateError as exc:
                st.error(str(exc))
            roster = load_roster(queue.run)
    if roster["reviewers"]:
        shares = assignment(queue.ids, roster["reviewers"], roster["overlap"])
        review = queue.view_mask("review")
        st.dataframe(pd.DataFrame([{"reviewer": r, "items to review": int((m & review).sum()),
                                    "decided": int((m & review & (queue.status != 0)).sum())} for r, m in shares.items()]),
                     hide_index=True)
        st.caption("Each reviewer ticks 'Only my share of the queue' in the sidebar (with their name as Reviewer).")
    st.subheader("Agreement on the overlap")
    doc, path = write_agreement(queue.run, queue.store)
    if doc["pairs"]:
        st.dataframe(pd.DataFrame([{"reviewers": " & ".join(p["reviewers"]), "items both decided": p["items"],
                                    "agree": p["agree"], "Cohen's kappa": None if p["kappa"] is None else round(p["kappa"], 3)}
                                   for p in doc["pairs"]]), hide_index=True)
    else:
        st.info("No item has been decided by two reviewers yet.")
    st.caption(f"Written to {path.relative_to(queue.run.root)}")


# -- the page -------------------------------------------------------------------------------------------------
def _hide_toolbar(st) -> None:
    """Streamlit's toolbar (Deploy, the developer menu) is not for reviewers. ``curate review`` passes
    ``--client.toolbarMode minimal``; for ``streamlit run`` set it here, and redraw once so the very first
    page already has it."""
    from streamlit import config

    if config.get_option("client.toolbarMode") != "minimal":
        st.set_option("client.toolbarMode", "minimal")
        st.rerun()


def render(run_dir: str, reviewer: str | None = None) -> None:
    """Draw the app for ``run_dir`` (one Streamlit script run)."""
    import streamlit as st

    from curate.errors import CurateError
    from curate.review import open_queue

    st.set_page_config(page_title="curate review", layout="wide")
    _hide_toolbar(st)
    _init_state(st, reviewer or _default_reviewer())
    try:
        queue = open_queue(run_dir)
    except CurateError as exc:
        st.error(str(exc))
        return
    _sidebar(st, queue, run_dir)
    view = st.session_state.view
    if view in ITEM_VIEWS:
        _fragment(st, items_view)(st, queue)
    elif view == "clusters":
        _fragment(st, clusters_view)(st, queue)
    elif view == "thresholds":
        thresholds_view(st, queue)
    else:
        team_view(st, queue)


_FRAGMENTS: dict = {}


def _fragment(st, fn):
    """``fn`` as a Streamlit fragment (made once per function)."""
    if fn not in _FRAGMENTS:
        _FRAGMENTS[fn] = st.fragment(fn)
    return _FRAGMENTS[fn]


def main() -> None:
    run, reviewer = _args()
    render(str(Path(run)), reviewer)


if __name__ == "__main__":
    main()
