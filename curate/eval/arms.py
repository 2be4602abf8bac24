"""The training sets ("arms") eval compares, all drawn from the run's ingested items.

=============================  ==============================================================================
arm                            items and labels
=============================  ==============================================================================
``raw``                        every ingested item with its given label
``curated``                    exactly what ``curate export`` exports: :func:`curate.fate.iter_fates` with the
                               same ``pending`` rule and the review decisions (accepted edits applied, so an
                               accepted label suggestion relabels the item)
``random``                     a random subset of ``raw`` of the curated size (a new draw per seed): is it the
                               choice of items, or just fewer of them?
``without:<stage dir>``        the fates with this stage left out (:func:`~curate.fate.iter_fates` ``stages=``):
                               curated plus the items only this stage removed: what removing them was worth
``relabelled:<stage dir>``     for a stage with a ``suggested_label`` column: ``without:<stage>`` with the
                               stage's suggested label on every item it flagged that no reviewer decided (a
                               reviewer's decision wins: an accepted label is used, a rejected item stays out)
``ceiling``                    every raw item with its clean label (``--clean-labels COLUMN``), when known
=============================  ==============================================================================

With ``--test-split`` the held-out rows are left out of every arm.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from curate.errors import CurateError
from curate.manifest import Manifest

log = logging.getLogger(__name__)

ARM_KINDS = ("raw", "curated", "random", "without", "relabelled", "ceiling")


@dataclass
class Arm:
    """One training set: rows of the run's records and their labels (``None`` = the given label)."""

    name: str
    kind: str
    description: str
    rows: np.ndarray                        # int64 indices into the run's records
    labels: list[str | None] | None = None  # per row of ``rows``; None: the given labels
    stage: str | None = None
    random_pool: np.ndarray | None = None   # random arms: draw len(rows) rows from this pool per seed
    info: dict[str, Any] = field(default_factory=dict)

    def rows_for(self, seed: int) -> np.ndarray:
        if self.random_pool is None:
            return self.rows
        rng = np.random.default_rng(10_000 + seed)
        return np.sort(rng.choice(self.random_pool, size=len(self.rows), replace=False))

    @property
    def size(self) -> int:
        return int(len(self.rows))


@dataclass
class Fates:
    """Per record row (run order), under one set of stages: kept by export, the exported label, the
    latest decision's status."""

    kept: np.ndarray
    labels: list[str | None]
    status: list[str | None]


def collect_fates(run, given: list[str | None], *, pending: str, stages=None, decisions=None) -> Fates:
    """:func:`curate.fate.iter_fates` over the whole run (``stages``: all finished stages unless given)."""
    from curate.fate import iter_fates

    kept, labels, status = [], [], []
    for f in iter_fates(run, pending=pending, stages=stages, decisions=decisions):
        kept.append(f.kept)
        new = f.replacements.get("label") or [None] * len(f)
        start = len(labels)
        labels += [n if n is not None else given[start + i] for i, n in enumerate(new)]
        status += f.status
    return Fates(np.concatenate(kept) if kept else np.zeros(0, bool), labels, status)


def raw_rows(given_labels: list[str | None], exclude_rows: np.ndarray | None = None) -> np.ndarray:
    """The raw arm's rows: every labelled item not held out (``exclude_rows``); known whichever arms are trained
    (``--budget samples`` gives every arm the raw arm's training samples)."""
    usable = np.array([lab is not None for lab in given_labels], dtype=bool)
    if exclude_rows is not None and len(exclude_rows):
        usable[exclude_rows] = False
    return np.flatnonzero(usable)


def build_arms(run, manifest: Manifest, given_labels: list[str | None], *, pending: str = "drop",
               kinds: tuple[str, ...] = ARM_KINDS, clean_labels: list[str | None] | None = None,
               exclude_rows: np.ndarray | None = None) -> tuple[list[Arm], list[str]]:
    """The arms of one eval, and notes on the arms that could not be built (e.g. no label-noise stage)."""
    from curate.fate import load_decisions

    bad = [k for k in kinds if k not in ARM_KINDS]
    if bad:
        raise CurateError(f"--arms: unknown arm {bad[0]!r}; allowed: {', '.join(ARM_KINDS)}")
    n = len(given_labels)
    decisions = load_decisions(run)
    stages = manifest.finished_stages()
    usable = np.ones(n, dtype=bool)
    if exclude_rows is not None and len(exclude_rows):
        usable[exclude_rows] = False

    def rows_of(f: Fates) -> np.ndarray:
        if len(f.kept) != n:
            raise CurateError(f"{run.root}: {len(f.kept)} items in the fates but {n} records; rerun 'curate run'")
        return np.flatnonzero(usable & f.kept & np.array([lab is not None for lab in f.labels]))

    notes: list[str] = []
    arms: list[Arm] = []
    raw = raw_rows(given_labels, exclude_rows)
    if "raw" in kinds:
        arms.append(Arm("raw", "raw", "every ingested item with its given label", raw))
    cur = collect_fates(run, given_labels, pending=pending, stages=stages, decisions=decisions)
    cur_rows = rows_of(cur)
    changed = int(sum(1 for r in cur_rows if cur.labels[r] != given_labels[r]))
    if "curated" in kinds:
        arms.append(Arm("curated", "curated", f"what 'curate export --pending {pending}' exports", cur_rows,
                        [cur.labels[r] for r in cur_rows], info={"relabelled": changed}))
    if "random" in kinds:
        if len(cur_rows) < len(raw):
            arms.append(Arm("random", "random", f"random {len(cur_rows):,} of the raw items (a new draw per seed)",
                            cur_rows, None, random_pool=raw))
        else:
            notes.append("random: the curated arm keeps every raw item, so a random subset of its size is raw itself")
    has_suggestions = False
    for s in stages:
        sugg_col = s.outputs.column_with_role("suggested_label")
        has_suggestions |= sugg_col is not None
        want_without = "without" in kinds
        want_relabel = "relabelled" in kinds and sugg_col is not None
        if not (want_without or want_relabel):
            continue
        others = [e for e in stages if e.dir != s.dir]
        wo = collect_fates(run, given_labels, pending=pending, stages=others, decisions=decisions)
        wo_rows = rows_of(wo)
        added = len(np.setdiff1d(wo_rows, cur_rows))
        if want_without and (added or len(wo_rows) != len(cur_rows)):
            arms.append(Arm(f"without:{s.dir}", "without", f"curated with {s.dir} left out (keeps the {added:,} items "
                            "only it removed)", wo_rows, [wo.labels[r] for r in wo_rows], stage=s.dir,
                            info={"added": int(added)}))
        elif want_without:
            why = "removed nothing on its own" if s.stats.flagged else "flagged nothing"
            notes.append(f"without:{s.dir}: the stage {why}; the arm would equal curated")
        if want_relabel:
            arms.append(_relabelled(run, s, sugg_col, wo, wo_rows, given_labels))
    if "relabelled" in kinds and not has_suggestions:
        notes.append("relabelled: no stage of this run suggests labels (add a label_noise stage)")
    if "ceiling" in kinds:
        if clean_labels is None:
            notes.append("ceiling: no clean labels for the training items (pass --clean-labels COLUMN)")
        else:
            rows = np.flatnonzero(usable & np.array([c is not None for c in clean_labels]))
            wrong = int(sum(1 for r in rows if clean_labels[r] != given_labels[r]))
            arms.append(Arm("ceiling", "ceiling", "every raw item with its clean label", rows,
                            [clean_labels[r] for r in rows], info={"given_label_wrong": wrong}))
    return arms, notes


def _relabelled(run, stage, column: str, wo: Fates, wo_rows: np.ndarray, given: list[str | None]) -> Arm:
    """``without:<stage>`` with the stage's suggestion as the label of every item it flagged that no
    reviewer decided (a reviewer's accepted label is already in ``wo``'s labels)."""
    from curate.shards import read_stage

    t = read_stage(run, stage.dir, ["flag", column])
    flags = t.column("flag").to_pylist()
    sugg = t.column(column).to_pylist() if column in t.column_names else [None] * len(flags)
    labels = []
    for r in wo_rows.tolist():
        lab = wo.labels[r]
        if flags[r] is not None and sugg[r] is not None and wo.status[r] is None:
            lab = sugg[r]
        labels.append(lab)
    changed = int(sum(1 for r, lab in zip(wo_rows.tolist(), labels) if lab != given[r]))
    return Arm(f"relabelled:{stage.dir}", "relabelled",
               f"curated with the items {stage.dir} flagged kept under its suggested label ({changed:,} relabelled)",
               wo_rows, labels, stage=stage.dir, info={"relabelled": changed})
