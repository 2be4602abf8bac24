"""Policy: turn every stage's per-row ``flag``/``action`` into one outcome per item.

An item is ``drop`` if any stage dropped it, else ``review`` if any stage asked for review, else
``keep``. Its reasons are the ``<stage dir>:<flag>`` of every stage that flagged it. Works shard by
shard (all stage shards are row-aligned with the data shards), so memory stays bounded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

import pyarrow.parquet as pq

from curate.rundir import RunDir, shard_name

_RANK = {None: 0, "keep": 0, "review": 1, "drop": 2}
_NAMES = {0: "keep", 1: "review", 2: "drop"}


@dataclass
class ShardOutcome:
    shard: int
    ids: list[str]
    actions: list[str]                    # keep | review | drop, per row
    reasons: list[list[str]]              # "<stage dir>:<flag>" per flagging stage, per row
    details: list[list[str]] = field(default_factory=list)


def completed_stage_dirs(run: RunDir) -> list[str]:
    """Stage directories of the run's finished stages, in pipeline order."""
    return [s["dir"] for s in run.load_manifest().get("stages", []) if s.get("status") == "done"]


def shard_outcome(run: RunDir, shard: int, stage_dirs: list[str]) -> ShardOutcome:
    """The combined outcome of every row of one shard."""
    ids = pq.read_table(run.data_shard(shard), columns=["id"]).column("id").to_pylist()
    rank = [0] * len(ids)
    reasons: list[list[str]] = [[] for _ in ids]
    details: list[list[str]] = [[] for _ in ids]
    for d in stage_dirs:
        t = pq.read_table(run.stage_dir(d) / shard_name(shard), columns=["flag", "action", "detail"])
        for i, (f, a, det) in enumerate(zip(t.column("flag").to_pylist(), t.column("action").to_pylist(),
                                            t.column("detail").to_pylist())):
            if f is None:
                continue
            reasons[i].append(f"{d}:{f}")
            details[i].append(det or "")
            rank[i] = max(rank[i], _RANK.get(a, 0))
    return ShardOutcome(shard, ids, [_NAMES[r] for r in rank], reasons, details)


def iter_outcomes(run: RunDir) -> Iterator[ShardOutcome]:
    stage_dirs = completed_stage_dirs(run)
    for i in range(len(run.data_shards())):
        yield shard_outcome(run, i, stage_dirs)


def summarize(run: RunDir) -> dict:
    """Counts of items by final action, and by reason for dropped and review items."""
    actions: Counter = Counter()
    drop_reasons: Counter = Counter()
    review_reasons: Counter = Counter()
    for out in iter_outcomes(run):
        actions.update(out.actions)
        for a, rs in zip(out.actions, out.reasons):
            if a == "drop":
                drop_reasons.update(rs)
            elif a == "review":
                review_reasons.update(rs)
    return {"items": sum(actions.values()), "keep": actions.get("keep", 0), "review": actions.get("review", 0),
            "drop": actions.get("drop", 0), "drop_reasons": dict(drop_reasons.most_common()),
            "review_reasons": dict(review_reasons.most_common())}
