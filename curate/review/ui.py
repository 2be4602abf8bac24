"""The review app's controls as one Streamlit element each: the sidebar and the item area.

A first page of Streamlit widgets costs the browser about what the widgets cost (React, a Markdown
renderer for every label, each widget kind's script files: docs/benchmarks/review.md), so the controls a
reviewer uses on every item (page and item buttons, accept / reject with the note and the caption or label
to keep, flag by hand, bulk decisions, the duplicate group's decisions, the view, the reviewer name, the
search) are plain HTML in one ``st.components.v2`` element (no iframe). A click or a key sends one trigger,
``{"act": ..., "arg": ..., "fields": {input name: value}}``, and the app's callback acts on it before the
rerun draws the page.

Every piece of user or stage data in the HTML goes through :func:`curate.review.cards.esc`; the
component's own script and style are constants of this module (trusted code, no user data).
"""

from __future__ import annotations

from curate.review.cards import esc

NAME = "curate_review"

#: Shortcut keys: ``data-key`` on a button; a key press (outside a text field, no modifier) clicks the
#: enabled button with that key. Inputs named in ``fields`` travel with every action of their element;
#: ``data-draft`` keeps a typed value across redraws (a note typed before pressing J stays with its item).
JS = r"""
const drafts = window.__curateDrafts || (window.__curateDrafts = new Map());
if (!window.__curateKeys) {
  window.__curateKeys = true;
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat) return;
    const t = e.composedPath()[0];
    if (t && (t.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(t.tagName))) return;
    const b = document.querySelector(`.crui button[data-key="${CSS.escape(e.key.toLowerCase())}"]:not([disabled])`);
    if (b) { e.preventDefault(); b.click(); }
  });
}
function fields(root) {
  const out = {};
  root.querySelectorAll('input[name]').forEach((i) => {
    if (i.type === 'radio') { if (i.checked) out[i.name] = i.value; }
    else if (i.type === 'checkbox') out[i.name] = i.checked;
    else out[i.name] = i.value;
  });
  return out;
}
export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  let root = parentElement.querySelector(':scope > .crui');
  if (!root) { root = document.createElement('div'); root.className = 'crui'; parentElement.appendChild(root); }
  root.innerHTML = data.html;
  const send = (act, arg) => setTriggerValue('action', { act, arg: arg ?? null, fields: fields(root) });
  root.querySelectorAll('[data-act]').forEach((el) => {
    el.addEventListener('click', (e) => {
      if (el.disabled || e.target.closest('a[href]')) return;
      send(el.dataset.act, el.dataset.arg);
    });
  });
  root.querySelectorAll('[data-menu]').forEach((b) => {
    b.addEventListener('click', () => {
      const m = root.querySelector(`#${CSS.escape(b.dataset.menu)}`);
      m.hidden = !m.hidden;
      b.setAttribute('aria-expanded', String(!m.hidden));
      const first = m.querySelector('input');
      if (!m.hidden && first) first.focus();
    });
  });
  root.querySelectorAll('input[data-draft]').forEach((i) => {
    if (drafts.has(i.dataset.draft)) i.value = drafts.get(i.dataset.draft);
    i.addEventListener('input', () => drafts.set(i.dataset.draft, i.value));
  });
  root.querySelectorAll('input[data-send]').forEach((i) => {
    const go = () => { if (i.value !== i.defaultValue) { i.defaultValue = i.value; send(i.dataset.send, i.value); } };
    i.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); go(); } });
    i.addEventListener('change', go);
  });
  root.querySelectorAll('input[type=checkbox][data-toggle]').forEach((i) => {
    i.addEventListener('change', () => send(i.dataset.toggle, i.checked ? 'on' : 'off'));
  });
}
"""

CSS = """
.crui{font-size:14px;line-height:1.4}
.crui .ui-row{display:flex;flex-wrap:wrap;gap:8px;align-items:center;margin:4px 0 8px}
.crui button{font:inherit;font-size:14px;line-height:1.3;padding:5px 12px;border-radius:8px;cursor:pointer;white-space:nowrap;
 border:1px solid rgba(49,51,63,.2);background:var(--st-background-color,#fff);color:inherit;min-height:36px}
.crui button:hover:not([disabled]){border-color:var(--st-primary-color,#ff4b4b);color:var(--st-primary-color,#ff4b4b)}
.crui button.primary{background:var(--st-primary-color,#ff4b4b);border-color:var(--st-primary-color,#ff4b4b);color:#fff}
.crui button.primary:hover:not([disabled]){color:#fff;filter:brightness(.95)}
.crui button[disabled]{opacity:.45;cursor:not-allowed}
.crui button .k{font-size:11px;opacity:.6;margin-left:6px}
.crui button[aria-current=page]{border-color:var(--st-primary-color,#ff4b4b);font-weight:600}
.crui .ui-menu{display:flex;flex-wrap:wrap;gap:8px;align-items:center;padding:8px;margin:0 0 8px;border-radius:8px;
 border:1px solid rgba(49,51,63,.2)}
.crui .ui-menu[hidden]{display:none}
.crui input[type=text]{font:inherit;font-size:14px;padding:6px 10px;border-radius:8px;min-width:0;box-sizing:border-box;
 border:1px solid rgba(49,51,63,.2);background:var(--st-secondary-background-color,#f0f2f6);color:inherit}
.crui label.ui-field{display:flex;flex-direction:column;gap:3px;font-size:13px}
.crui label.ui-field input{width:100%}
.crui .ui-note{flex:0 1 340px}
.crui fieldset{border:none;margin:0;padding:0;display:flex;gap:10px;align-items:center;font-size:13px}
.crui fieldset legend{float:left;margin-right:4px;padding:0}
.crui .ui-box{border:1px solid rgba(49,51,63,.2);border-radius:8px;padding:14px;margin:4px 0 10px}
.crui .ui-msg{padding:10px 14px;border-radius:8px;background:rgba(28,131,225,.1);margin:4px 0 8px}
.crui .ui-prog{margin:0 0 6px;font-size:13px}
.crui .ui-bar{height:6px;border-radius:3px;background:rgba(49,51,63,.12);margin-top:4px}
.crui .ui-bar>div{height:100%;border-radius:3px;background:var(--st-primary-color,#ff4b4b)}
.crui pre.ui-details{white-space:pre-wrap;font-size:12.5px;background:rgba(128,128,128,.08);padding:8px;border-radius:6px}
.crui .ui-side{display:flex;flex-direction:column;gap:10px}
.crui .ui-side h2{font-size:1.5rem;margin:0;font-weight:700}
.crui .ui-views{display:flex;flex-direction:column;gap:4px}
.crui .ui-views button{text-align:left;width:100%;border-color:transparent;background:none;min-height:32px;padding:4px 10px}
.crui .ui-views button[aria-current=page]{background:var(--st-secondary-background-color,#f0f2f6);color:var(--st-primary-color,#ff4b4b)}
.crui .ui-small{font-size:12.5px;opacity:.7}
.crui .cr-card[data-act]{cursor:pointer}
"""

_COMPONENT = None


def component():
    """The component's mount function (registered once per process; Streamlit re-registers it on a new
    runtime by itself)."""
    global _COMPONENT
    if _COMPONENT is None:
        import streamlit as st

        _COMPONENT = st.components.v2.component(NAME, js=JS, css=CSS, isolate_styles=False)
    return _COMPONENT


def button(label: str, act: str | None = None, *, arg=None, key: str | None = None, primary: bool = False,
           disabled: bool = False, menu: str | None = None, current: bool = False) -> str:
    """A button: ``act`` (with ``arg``) is sent on click, or (``menu``) it opens the element ``menu``;
    ``current``: it stands for what is shown (the current view)."""
    attrs = [f'aria-label="{esc(label)}"']
    if current:
        attrs.append('aria-current="page"')
    if menu:
        attrs.append(f'data-menu="{esc(menu)}" aria-expanded="false"')
    else:
        attrs.append(f'data-act="{esc(act)}"')
    if arg is not None:
        attrs.append(f'data-arg="{esc(arg)}"')
    if key:
        attrs.append(f'data-key="{esc(key.lower())}"')
    if primary:
        attrs.append('class="primary"')
    if disabled:
        attrs.append("disabled")
    hint = f'<span class="k">{esc(key.upper())}</span>' if key else ""
    return f'<button type="button" {" ".join(attrs)}>{esc(label)}{hint}</button>'


def text_field(label: str, name: str, value: str = "", *, send: str | None = None, draft: str | None = None,
               placeholder: str = "", cls: str = "") -> str:
    """A labelled text input; ``send``: an action sent with its value on Enter or when it changes."""
    attrs = [f'type="text" name="{esc(name)}" value="{esc(value)}"', 'autocomplete="off"']
    if send:
        attrs.append(f'data-send="{esc(send)}"')
    if draft:
        attrs.append(f'data-draft="{esc(draft)}"')
    if placeholder:
        attrs.append(f'placeholder="{esc(placeholder)}"')
    return f'<label class="ui-field {cls}">{esc(label)}<input {" ".join(attrs)}></label>'


def choice(legend: str, name: str, options: list[str], value: str) -> str:
    """Radio buttons (their value travels with the element's actions)."""
    opts = "".join(f'<label><input type="radio" name="{esc(name)}" value="{esc(o)}"{" checked" if o == value else ""}> '
                   f'{esc(o)}</label>' for o in options)
    return f'<fieldset><legend>{esc(legend)}</legend>{opts}</fieldset>'


def checkbox(label: str, act: str, checked: bool) -> str:
    return (f'<label><input type="checkbox" data-toggle="{esc(act)}"{" checked" if checked else ""}> '
            f'{esc(label)}</label>')


def row(*parts: str, cls: str = "ui-row") -> str:
    return f'<div class="{cls}">' + "".join(p for p in parts if p) + "</div>"


def menu(ident: str, *parts: str) -> str:
    """A menu opened by ``button(..., menu=ident)`` (in the browser, no rerun)."""
    return f'<div class="ui-menu" id="{esc(ident)}" hidden>' + "".join(parts) + "</div>"


def progress(done: int, total: int) -> str:
    share = done / total if total else 1.0
    return (f'<div class="ui-prog">Reviewed {done:,} / {total:,}<div class="ui-bar">'
            f'<div style="width:{100 * share:.1f}%"></div></div></div>')


def message(text: str) -> str:
    return f'<div class="ui-msg" role="status">{esc(text)}</div>'


def mount(st, key: str, html: str, on_action) -> None:
    """Draw ``html`` as one element; ``on_action(payload)`` runs (as a callback, before the rerun) on each action."""
    def callback():
        value = st.session_state.get(key)
        payload = value.get("action") if hasattr(value, "get") else getattr(value, "action", None)
        if isinstance(payload, dict) and payload.get("act"):
            on_action(payload)

    component()(key=key, data={"html": html}, on_action_change=callback, width="stretch")
