"""The ciFAIR near-duplicate benchmark set: CIFAR-10 test/train images in ciFAIR's judged pairs plus
random distractors, and how to score a clustering against the pairs."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from _common import shared_data

# The blind by-eye judgment of the unannotated pairs of embedding_dedup's defaults on all 60,000 images
# (benchmarks/cifair_judge.py): TestID, TrainID, ..., same (1: every judge said the same photograph).
JUDGMENTS = Path(__file__).parent / "data" / "cifair_extra_judgments.csv"


@dataclass
class CifairSet:
    images: list[bytes]
    ids: list[str]              # "test-123" / "train-456" (unique, stable: usable as cache keys)
    is_test: np.ndarray         # bool per image
    near: list[tuple[int, int]]     # Judgment 0/1 test->train pairs, as indices into images
    similar: list[tuple[int, int]]  # Judgment 2 ("very similar") pairs
    annotated: set[tuple[int, int]]  # every listed pair (incl. within-test), (min, max) index
    judged: dict[tuple[int, int], bool] = field(default_factory=dict)  # unlisted test-train pairs judged by eye:
    #                                                                    (min, max) index -> the same photograph


def listed_pairs(name: str) -> list[tuple[int, int, str]]:
    """ciFAIR's rows of one file: (TestID, TrainID, Judgment), CIFAR-10 indices."""
    with open(shared_data("cifair-duplicates") / name, newline="") as f:
        return [(int(r["TestID"]), int(r["TrainID"]), r["Judgment"]) for r in csv.DictReader(f)]


def load_set(distractors_test: int, distractors_train: int, *, full: bool = False, seed: int = 0) -> CifairSet:
    """Every image of an annotated pair plus random distractors (``full``: all 10k test + 50k train)."""
    from dedup_cifair import load_images

    test, train = load_images()
    cross = listed_pairs("duplicates_cifar10.csv")
    within = listed_pairs("duplicates_cifar10_test.csv")
    if full:
        t_sel, r_sel = np.arange(len(test)), np.arange(len(train))
    else:
        rng = np.random.default_rng(seed)
        t_need = {t for t, _, _ in cross} | {t for t, _, _ in within} | {r for _, r, _ in within}
        r_need = {r for _, r, _ in cross}
        t_rest = np.setdiff1d(np.arange(len(test)), sorted(t_need))
        r_rest = np.setdiff1d(np.arange(len(train)), sorted(r_need))
        t_sel = np.sort(np.concatenate([sorted(t_need), rng.choice(t_rest, distractors_test, replace=False)])).astype(int)
        r_sel = np.sort(np.concatenate([sorted(r_need), rng.choice(r_rest, distractors_train, replace=False)])).astype(int)
    t_pos = {int(t): i for i, t in enumerate(t_sel)}
    r_pos = {int(r): len(t_sel) + i for i, r in enumerate(r_sel)}
    images = [test[i] for i in t_sel] + [train[i] for i in r_sel]
    ids = [f"test-{i}" for i in t_sel] + [f"train-{i}" for i in r_sel]
    near = [(t_pos[t], r_pos[r]) for t, r, j in cross if j in ("0", "1")]
    similar = [(t_pos[t], r_pos[r]) for t, r, j in cross if j == "2"]
    annotated = {(min(a, b), max(a, b)) for a, b in near + similar}
    annotated |= {(min(t_pos[a], t_pos[b]), max(t_pos[a], t_pos[b])) for a, b, _ in within if a in t_pos and b in t_pos}
    is_test = np.zeros(len(images), dtype=bool)
    is_test[:len(t_sel)] = True
    judged = {}
    if JUDGMENTS.exists():
        with open(JUDGMENTS, newline="") as f:
            for r in csv.DictReader(f):
                t, tr = int(r["TestID"]), int(r["TrainID"])
                if not r["ciFAIR"] and t in t_pos and tr in r_pos:
                    judged[(t_pos[t], r_pos[tr])] = r["same"] == "1"
    return CifairSet(images, ids, is_test, near, similar, annotated, judged)


@dataclass
class Score:
    recall_near: float
    recall_similar: float
    cross_pairs: int        # test-train pairs put in one cluster
    unannotated: int        # ... of which ciFAIR lists none
    within_train: int       # train-train pairs put in one cluster (ciFAIR annotates none)
    flagged: int            # items flagged as duplicates
    found: int = 0          # Judgment 0/1 pairs found
    judged_same: int = 0    # unannotated pairs every judge called the same photograph (cifair_judge.py)
    unjudged: int = 0       # unannotated pairs nobody judged (a setting other than the defaults judged)

    @property
    def false_at_most(self) -> int:
        """Unannotated pairs not judged the same photograph (judged different, split, unsure or unjudged)."""
        return self.unannotated - self.judged_same

    def goal(self, judged: bool = False) -> bool:
        """Issue 10: recall >= 0.8 with at most twice as many unannotated (``judged``: not judged the same
        photograph) pairs as judged pairs found."""
        extra = self.false_at_most if judged else self.unannotated
        return self.recall_near >= 0.8 and extra <= 2 * self.found

    def row(self) -> str:
        return (f"{self.recall_near:11.3f} {self.recall_similar:14.3f} {self.cross_pairs:11d} {self.unannotated:13d} "
                f"{self.within_train:12d} {self.flagged:8d}")

    def judged_row(self) -> str:
        return f"{self.judged_same:12d} {self.false_at_most:12d} {self.unjudged:9d}"

    HEADER = (f"{'recall near':>11s} {'recall similar':>14s} {'test-train':>11s} {'not annotated':>13s} "
              f"{'train-train':>12s} {'flagged':>8s}")
    JUDGED_HEADER = f"{'judged same':>12s} {'not same':>12s} {'unjudged':>9s}"


def score(labels: np.ndarray, s: CifairSet) -> Score:
    """Recall of the judged pairs and the pairs a clustering adds (``labels``: cluster per image)."""
    labels = np.asarray(labels)
    found = int(sum(labels[a] == labels[b] for a, b in s.near))
    rn = found / len(s.near)
    rs = float(np.mean([labels[a] == labels[b] for a, b in s.similar])) if s.similar else float("nan")
    _, inv = np.unique(labels, return_inverse=True)
    tc = np.bincount(inv[s.is_test], minlength=inv.max() + 1)
    rc = np.bincount(inv[~s.is_test], minlength=inv.max() + 1)
    cross = int(np.sum(tc * rc))
    found_annotated = sum(1 for a, b in s.annotated if labels[a] == labels[b] and s.is_test[a] != s.is_test[b])
    sizes = np.bincount(inv)
    flagged = int(np.sum(sizes[sizes > 1] - 1))
    judged_same = unjudged = 0
    if s.judged:
        for t, r in clustered_test_train_pairs(labels, s.is_test):
            if (t, r) in s.annotated:
                continue
            same = s.judged.get((t, r))
            judged_same += same is True
            unjudged += same is None
    return Score(rn, rs, cross, cross - found_annotated, int(np.sum(rc * (rc - 1) // 2)), flagged, found, judged_same, unjudged)


def clustered_test_train_pairs(labels: np.ndarray, is_test: np.ndarray):
    """Every test-train pair ``(test, train)`` (indices) sharing a cluster (``labels``: cluster per image):
    clusters in the order of their first image, then test x train members in index order."""
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty_like(first)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    order = np.argsort(rank[inv], kind="stable")
    for members in np.split(order, np.flatnonzero(np.diff(rank[inv][order])) + 1):
        if len(members) > 1:
            tests, trains = members[is_test[members]], members[~is_test[members]]
            for t in tests.tolist():
                for r in trains.tolist():
                    yield (t, r)
