"""Which items the report shows, and the cards it shows them on.

A gallery shows the ``top`` items of one reason by its score (the most extreme first) plus a random
``sample`` of the rest (seeded, so the same run gives the same report), and says so on the page. Cards
are plain dicts of text; the template escapes every value.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curate.report.gather import RunData, StageData
from curate.captions.worddiff import word_diff

TOP = 24
SAMPLE = 24
MAX_MEMBERS = 8
TEXT_CHARS = 280


@dataclass
class Gallery:
    """One gallery: a title, how many items it is about, the rule that picked the shown ones, the cards."""

    key: str
    title: str
    total: int
    rule: str
    kind: str = "items"           # items | clusters | labels | diffs
    cards: list[dict] = field(default_factory=list)
    stage: str = ""               # the stage directory it is about
    flag: str = ""                # the flag it shows (per-stage galleries)

    @property
    def shown(self) -> int:
        return len(self.cards)


@dataclass
class Selection:
    top: int = TOP
    sample: int = SAMPLE
    seed: int = 0

    def pick(self, rows: np.ndarray, key: np.ndarray | None, *, descending: bool) -> tuple[np.ndarray, np.ndarray]:
        """``rows`` split into the top ``top`` by ``key`` (NaN last) and a random sample of the others."""
        rows = np.asarray(rows, dtype=np.int64)
        if key is None:
            top, rest = rows[: self.top], rows[self.top:]
        else:
            k = np.where(np.isnan(key), np.inf, -key if descending else key)
            order = np.argsort(k, kind="stable")
            top, rest = rows[order[: self.top]], rows[order[self.top:]]
        if len(rest) > self.sample:
            rng = np.random.default_rng(self.seed + len(rows))
            rest = np.sort(rng.choice(rest, size=self.sample, replace=False))
        return top, rest

    def rule(self, total: int, n_top: int, n_sample: int, by: str | None) -> str:
        if total <= n_top + n_sample:
            return f"all {total:,}"
        head = f"the {n_top:,} {by}" if by else f"the first {n_top:,}"
        return f"{head}, and {n_sample:,} drawn at random from the other {total - n_top:,}"


def _clip(text: str | None, n: int = TEXT_CHARS) -> str | None:
    if text is None:
        return None
    return text if len(text) <= n else text[: n - 1] + "…"


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def base_card(data: RunData, row: int) -> dict:
    """What every card shows about an item: id, source, text, label."""
    return {"row": int(row), "id": data.ids[row], "source": data.sources[row], "text": _clip(data.texts[row]),
            "full_text": data.texts[row] if data.texts[row] and len(data.texts[row]) > TEXT_CHARS else None,
            "label": data.labels[row]}


def _order_for_flag(stage: StageData, flag: str) -> tuple[np.ndarray | None, bool, str | None, str | None]:
    """The key that ranks a flag's items (most extreme first): (values, descending, words, column)."""
    out = stage.outputs
    spec = out.score_for(flag)
    if spec is not None and spec.column in stage.table.column_names:
        label = spec.label or spec.column
        above = spec.flags_when == "above"
        return stage.numbers(spec.column), above, f"{'highest' if above else 'lowest'} by {label}", spec.column
    conf = out.column_with_role("label_confidence")
    if conf and conf in stage.table.column_names:
        return stage.numbers(conf), True, "most confident", conf
    size = out.column_with_role("group_size")
    if size and size in stage.table.column_names:
        return stage.numbers(size), True, "in the largest groups", size
    return None, False, None, None


def stage_galleries(data: RunData, stage: StageData, sel: Selection, prefix: str) -> list[Gallery]:
    """Per reason of one stage: its flagged items, with the detail and the measured value."""
    flags = stage.flags()
    details = stage.column("detail") or [None] * data.n
    actions = stage.column("action") or [None] * data.n
    out = []
    for i, (flag, total) in enumerate(Counter(f for f in flags.tolist() if f is not None).most_common()):
        rows = np.flatnonzero(flags == flag)
        key, desc, words, col = _order_for_flag(stage, flag)
        top, sample = sel.pick(rows, key[rows] if key is not None else None, descending=desc)
        values = key if key is not None else None
        cards = []
        for part, chosen in (("top", top), ("sample", sample)):
            for r in chosen.tolist():
                c = base_card(data, r)
                c.update(detail=details[r], action=actions[r], part=part)
                if values is not None:
                    c["value"] = f"{col} = {_fmt(values[r])}"
                cards.append(c)
        title = f"{flag} ({'proposed edit' if flag in stage.edit_flags() else 'flagged items'})"
        out.append(Gallery(f"{prefix}-g{i}", title, int(total), sel.rule(int(total), len(top), len(sample), words),
                           cards=cards, stage=stage.entry.dir, flag=flag))
    return out


def duplicate_gallery(data: RunData, stage: StageData, sel: Selection, key: str) -> Gallery | None:
    """Duplicate clusters side by side, the representative marked; the largest clusters plus a sample."""
    group_col = stage.outputs.column_with_role("duplicate_group")
    if not group_col or group_col not in stage.table.column_names:
        return None
    values, sizes, order, starts = stage.clusters(group_col)
    rep_col = stage.outputs.column_with_role("representative")
    reps = stage.column(rep_col) if rep_col else None
    if not len(values):
        return Gallery(key, f"{stage.entry.dir}: duplicate clusters", 0, "none found", kind="clusters",
                       stage=stage.entry.dir)
    top, sample = sel.pick(np.arange(len(values)), sizes.astype(np.float64), descending=True)
    flags = stage.column("flag")
    details = stage.column("detail")
    cards = []
    for part, chosen in (("top", top), ("sample", sample)):
        for ci in chosen.tolist():
            rows = order[starts[ci]:starts[ci] + sizes[ci]].tolist()
            rows = sorted(rows, key=lambda r: (not (reps and reps[r]), r))
            shown = []
            for r in rows[:MAX_MEMBERS]:
                c = base_card(data, r)
                c.update(representative=bool(reps and reps[r]), flag=flags[r], detail=details[r])
                shown.append(c)
            cards.append({"group": _fmt(values[ci]), "size": len(rows), "members": shown,
                          "more": max(0, len(rows) - MAX_MEMBERS), "part": part, "row": rows[0]})
    total = len(values)
    rule = sel.rule(total, len(top), len(sample), "largest clusters") + \
        f"; up to {MAX_MEMBERS} members each, the representative first"
    return Gallery(key, f"{stage.entry.dir}: duplicate clusters", total, rule, kind="clusters", cards=cards,
                   stage=stage.entry.dir)


def label_gallery(data: RunData, stage: StageData, sel: Selection, key: str) -> Gallery | None:
    """Label issues: given label, suggested label, confidence; the most confident first plus a sample."""
    sug_col = stage.outputs.column_with_role("suggested_label")
    if not sug_col or sug_col not in stage.table.column_names:
        return None
    rows = np.flatnonzero(np.array([f is not None for f in stage.flags().tolist()], dtype=bool))
    suggested = stage.column(sug_col)
    conf_col = stage.outputs.column_with_role("label_confidence")
    conf = stage.numbers(conf_col) if conf_col and conf_col in stage.table.column_names else None
    top, sample = sel.pick(rows, conf[rows] if conf is not None else None, descending=True)
    details = stage.column("detail")
    cards = []
    for part, chosen in (("top", top), ("sample", sample)):
        for r in chosen.tolist():
            c = base_card(data, r)
            c.update(part=part, suggested=suggested[r], detail=details[r],
                     confidence=_fmt(float(conf[r])) if conf is not None else None)
            cards.append(c)
    return Gallery(key, f"{stage.entry.dir}: label issues", len(rows),
                   sel.rule(len(rows), len(top), len(sample), "most confident suggestions"), kind="labels", cards=cards,
                   stage=stage.entry.dir)


def caption_gallery(data: RunData, stage: StageData, sel: Selection, key: str) -> Gallery | None:
    """Proposed caption replacements as a word diff; the largest changes first plus a sample."""
    col = stage.outputs.column_with_role("replacement_text")
    if not col or col not in stage.table.column_names:
        return None
    repl = stage.column(col)
    flags = stage.column("flag")
    rows = np.array([r for r, (f, t) in enumerate(zip(flags, repl))
                     if f is not None and t is not None and t != data.texts[r]], dtype=np.int64)
    diffs = {int(r): word_diff(data.texts[r], repl[r]) for r in rows.tolist()}
    changed = np.array([sum(len(t.split()) for op, t in diffs[int(r)] if op != "same") for r in rows], dtype=np.float64)
    top, sample = sel.pick(rows, changed if len(rows) else None, descending=True)
    details = stage.column("detail")
    cards = []
    for part, chosen in (("top", top), ("sample", sample)):
        for r in chosen.tolist():
            c = base_card(data, r)
            c.update(part=part, diff=diffs[r], detail=details[r], flag=flags[r])
            cards.append(c)
    return Gallery(key, f"{stage.entry.dir}: caption repairs", len(rows),
                   sel.rule(len(rows), len(top), len(sample), "with the most words changed"), kind="diffs", cards=cards,
                   stage=stage.entry.dir)


def score_gallery(data: RunData, stage: StageData, sel: Selection, key: str) -> Gallery | None:
    """The flagged items with the most extreme measured value, per declared score (e.g. lowest CLIP score)."""
    flags = stage.flags()
    details = stage.column("detail")
    cards, total, parts, names = [], 0, [], []
    for spec in stage.outputs.scores:
        if spec.column not in stage.table.column_names:
            continue
        rows = np.flatnonzero(flags == spec.flag)
        if not len(rows):
            continue
        values = stage.numbers(spec.column)
        above = spec.flags_when == "above"
        top, _ = Selection(top=sel.top, sample=0).pick(rows, values[rows], descending=above)
        total += len(rows)
        words = f"{'highest' if above else 'lowest'} {spec.label or spec.column}"
        names.append(words)
        parts.append(f"{spec.flag}: the {len(top):,} {words}")
        for r in top.tolist():
            c = base_card(data, r)
            c.update(part="top", detail=details[r], value=f"{spec.label or spec.column} = {_fmt(values[r])}",
                     flag=spec.flag)
            cards.append(c)
    if not cards:
        return None
    title = names[0] if len(names) == 1 else "measured values"
    return Gallery(key, f"{stage.entry.dir}: {title}", total, "; ".join(parts), cards=cards, stage=stage.entry.dir)


def by_kind(data: RunData, sel: Selection) -> list[tuple[str, list[Gallery]]]:
    """The galleries by kind: duplicates, label issues, caption repairs, measured values."""
    kinds: dict[str, list[Gallery]] = {"Duplicate clusters": [], "Label issues": [], "Caption repairs": [],
                                       "Lowest / highest scores": []}
    for si, stage in enumerate(data.stages):
        if not stage.entry.stats.flagged:
            continue
        for title, fn in (("Duplicate clusters", duplicate_gallery), ("Label issues", label_gallery),
                          ("Caption repairs", caption_gallery)):
            g = fn(data, stage, sel, f"k{si}-{len(kinds[title])}-{title.split()[0].lower()}")
            if g is not None:
                kinds[title].append(g)
                break
        else:
            g = score_gallery(data, stage, sel, f"k{si}-score")
            if g is not None:
                kinds["Lowest / highest scores"].append(g)
    return [(k, v) for k, v in kinds.items()]


def gallery_rows(galleries: list[Gallery]) -> set[int]:
    """Every row a card shows (cluster members included): the images to thumbnail."""
    rows: set[int] = set()
    for g in galleries:
        for c in g.cards:
            if "members" in c:
                rows.update(m["row"] for m in c["members"])
            else:
                rows.add(c["row"])
    return rows
