"""The review queue: an index of every item of a run, its flags and scores, its status from ``review.db``.

The index has one row per item (so a reviewer can browse everything, not only what the stages flagged):
where it lives (``shard``, ``row``), ``id``, ``source``, ``text``, ``label``, ``width``, ``height``, its
stage ``action`` (``keep`` / ``review`` / ``drop``: the strongest action of its flags, a proposed edit
waiting for review counting as ``review``), ``reasons`` (``<dir>:<flag>; ...``) and per finished stage
directory ``d``: ``d:flag``, ``d:action``, ``d:detail``, the score behind each declared flag as
``d.<column>`` (float) and the columns with a role as ``d@group``, ``d@rep``, ``d@suggested``,
``d@confidence``, ``d@replacement`` (see :mod:`curate.review.roles`). Everything it knows about a stage
comes from the stage's declared outputs in the manifest. The index is built once per run state and
cached in ``runs/<name>/cache/``; image bytes are never in it: a page reads only its own items' images.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.decisions import STATUSES, Decision, DecisionStore
from curate.errors import CurateError
from curate.fate import shard_fates
from curate.review.roles import StageView, stage_views
from curate.rundir import RunDir, write_table
from curate.shards import read_annotation_shard, read_data_shard

log = logging.getLogger(__name__)

INDEX_VERSION = 2
_RECORD_COLS = ["id", "source", "text", "label", "width", "height"]
_STATUS_CODE = {s: i for i, s in enumerate(STATUSES)}  # pending 0, accepted 1, rejected 2

#: Views of the queue: items a person must settle, items a stage dropped (audit), every flagged item,
#: every item of the run.
VIEWS = ("review", "audit", "flagged", "all")


# -- the index -------------------------------------------------------------------------------------
def _index_key(manifest, stages: list[StageView]) -> str:
    blob = json.dumps([INDEX_VERSION, manifest.input.fingerprint if manifest.input else None,
                       [(s.dir, s.entry.fingerprint, s.entry.finished) for s in stages]], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _stage_part(run: RunDir, sv: StageView, shard: int, n: int) -> dict[str, Any]:
    """One stage's columns of one shard for the index (flag, action, detail, declared scores, roles)."""
    want = ["flag", "action", "detail", *sv.score_columns(), *sv.roles.values()]
    t = read_annotation_shard(run, sv.entry, shard, want)
    if t.num_rows != n:
        raise CurateError(f"{run.stage_shard(sv.entry, shard)}: {t.num_rows} rows, the data shard has {n}; "
                          f"rerun the stage ({sv.entry.name})")

    def col(name):
        if name in t.column_names:
            return t.column(name).to_numpy(zero_copy_only=False)
        return np.full(n, None, dtype=object)

    d = sv.dir
    flags = col("flag")
    out: dict[str, Any] = {f"{d}:flag": flags, f"{d}:action": col("action"), f"{d}:detail": col("detail")}
    for c in sv.score_columns():
        out[f"{d}.{c}"] = pd.to_numeric(pd.Series(col(c)), errors="coerce").to_numpy(np.float64)
    for role, c in sv.roles.items():
        v = col(c)
        if role == "representative":
            v = np.array([bool(x) for x in v], bool)
        elif role == "label_confidence":
            v = pd.to_numeric(pd.Series(v), errors="coerce").to_numpy(np.float64)
        elif role == "duplicate_group":
            v = np.array([None if x is None else str(x) for x in v], dtype=object)
        elif role in ("replacement_text", "suggested_label"):  # a proposal matters where the stage flagged
            v = np.where(pd.notna(flags), v, None)
        out[sv.index_column(role)] = v
    return out


def build_index(run: RunDir, *, use_cache: bool = True, progress: bool = False) -> pd.DataFrame:
    """The index of every item (see the module docstring), from the cache when the run is unchanged."""
    manifest = run.require_finished("review it")
    entries = manifest.finished_stages()
    stages = stage_views(entries)
    key = _index_key(manifest, stages)
    cache = run.cache_dir / f"review-index-{key}.parquet"
    if use_cache and cache.is_file():
        try:
            return pq.read_table(cache).to_pandas()
        except (OSError, pa.ArrowInvalid) as exc:  # a damaged cache is rebuilt
            log.warning("review index cache %s unreadable (%s); rebuilding", cache, exc)
    from tqdm.auto import tqdm

    parts: list[pd.DataFrame] = []
    n_shards = len(run.data_shards())
    for shard in tqdm(range(n_shards), desc="review index", unit="shard", disable=not progress):
        rec = read_data_shard(run, shard, _RECORD_COLS)
        n = rec.num_rows
        cols: dict[str, Any] = {c: rec.column(c).to_numpy(zero_copy_only=False) for c in _RECORD_COLS}
        cols["shard"] = np.full(n, shard, np.int32)
        cols["row"] = np.arange(n, dtype=np.int32)
        for sv in stages:
            cols.update(_stage_part(run, sv, shard, n))
        fates = shard_fates(run, shard, entries, {})  # the stages' own verdict, before any decision
        cols["action"] = np.array(fates.stage_action, dtype=object)
        cols["reasons"] = np.array(["; ".join(r) for r in fates.reasons], dtype=object)
        parts.append(pd.DataFrame(cols))
    if parts:
        index = pd.concat(parts, ignore_index=True)
    else:
        index = pd.DataFrame({c: pd.Series(dtype=object) for c in [*_RECORD_COLS, "action", "reasons"]})
        index["shard"] = pd.Series(dtype=np.int32)
        index["row"] = pd.Series(dtype=np.int32)
    if use_cache:
        for old in run.cache_dir.glob("review-index-*.parquet"):
            old.unlink(missing_ok=True)
        write_table(pa.Table.from_pandas(index, preserve_index=False), cache)
    return index


# -- queries ---------------------------------------------------------------------------------------
@dataclass
class Query:
    """What the reviewer is looking at. Empty lists mean 'no restriction'."""

    view: str = "review"
    stages: list[str] = field(default_factory=list)      # stage dirs: flagged by any of them
    reasons: list[str] = field(default_factory=list)     # "<stage dir>:<flag>" (or "reviewer:flag")
    statuses: list[str] = field(default_factory=list)    # pending / accepted / rejected
    score: str | None = None                             # score column "<dir>.<col>" to filter and sort by
    score_min: float | None = None
    score_max: float | None = None
    search: str = ""                                     # case-insensitive, in text, label, id, source, reasons, details
    sort: str | None = None                              # score column; None keeps run order
    descending: bool = False
    share: Any = None                                    # a boolean mask: the reviewer's share of the items


MANUAL_REASON = "reviewer:flag"


class ReviewQueue:
    """The index of one run plus the live status of each item (synced incrementally from ``review.db``)."""

    def __init__(self, run_root: str | Path, *, progress: bool = False):
        self.run = RunDir(run_root)
        self.manifest = self.run.require_finished("review it")
        self.stages = stage_views(self.manifest.finished_stages())
        self.stage_dirs = [s.dir for s in self.stages]
        self.by_dir = {s.dir: s for s in self.stages}
        self.index = build_index(self.run, progress=progress)
        self.store = DecisionStore(self.run.review_db)
        n = len(self.index)
        self.ids = self.index["id"].to_numpy()
        self._pos = pd.Index(self.ids)
        self.status = np.zeros(n, np.int8)
        self.manual = np.zeros(n, bool)                     # flagged by hand (kind "flag")
        self.latest: dict[str, Decision] = {}               # the latest row per decided item
        self.manual_reasons: dict[str, str] = {}
        self._synced = 0
        self._lock = threading.Lock()
        self._cache_lock = threading.Lock()  # sessions share this object: guard the LRU caches
        self._thumbs: OrderedDict[tuple[str, int], bytes | None] = OrderedDict()
        self._haystack: pa.Array | None = None
        self._reasons: dict[str, dict[str, int]] = {}
        self._searches: OrderedDict[str, np.ndarray] = OrderedDict()
        self._details: OrderedDict[int, dict] = OrderedDict()
        self._groups: dict[str, pd.DataFrame] = {}
        self._columns: dict[str, np.ndarray] | None = None
        self._shares: dict[tuple, dict[str, np.ndarray]] = {}
        self.action = self.index["action"].to_numpy()
        self._flag_cols = {d: _none_for_nan(self.index[f"{d}:flag"].to_numpy()) for d in self.stage_dirs}
        # masks every rerun needs, computed once (comparing 100k strings each time costs milliseconds)
        self._has_flag = {d: pd.notna(f) for d, f in self._flag_cols.items()}
        self._is = {a: self.action == a for a in ("keep", "review", "drop")}
        self.refresh()

    # -- status ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Pull decisions written since the last sync (by anyone, any process)."""
        with self._lock:
            if self.store.max_id() == self._synced:
                return
            if self._synced == 0:
                for item, reason in self.store.flagged_by_hand().items():
                    self.manual_reasons[item] = reason
            new = self.store.latest(since=self._synced)
            if not new:
                return
            ids = list(new)
            pos = self._pos.get_indexer(ids)
            for item, p in zip(ids, pos):
                d = new[item]
                self.latest[item] = d
                if d.kind == "flag":
                    self.manual_reasons[item] = d.note or ""
                elif d.kind is None and d.decision == "pending" and d.undoes is not None:
                    self.manual_reasons.pop(item, None)  # undone back to nothing
                if p >= 0:
                    self.status[p] = _STATUS_CODE[d.decision]
                    self.manual[p] = item in self.manual_reasons
            self._synced = max(max(d.id for d in new.values()), self._synced)

    def decide(self, item_ids: Iterable[str], decision: str, *, reviewer: str | None = None,
               note: str | None = None, caption: str | None = None, label: str | None = None) -> list[int]:
        """Record an item decision for items; returns the new row ids (for undo)."""
        rows = self.store.decide(item_ids, decision, reviewer=reviewer, note=note, caption=caption, label=label)
        self.refresh()
        return rows

    def flag(self, item_id: str, reason: str, *, reject: bool = False, reviewer: str | None = None) -> list[int]:
        """Flag an item by hand (a miss of the stages) with a reason; ``reject`` drops it at once."""
        reason = (reason or "").strip()
        if not reason:
            raise CurateError("a manual flag needs a reason (what is wrong with the item?)")
        rows = self.store.decide([item_id], "rejected" if reject else "pending", reviewer=reviewer, note=reason,
                                 kind="flag")
        self.refresh()
        return rows

    def undo(self, row_ids: Iterable[int], *, reviewer: str | None = None) -> tuple[list[int], list[str]]:
        rows, skipped = self.store.undo(row_ids, reviewer=reviewer)
        self.refresh()
        return rows, skipped

    def __contains__(self, item_id: str) -> bool:
        """Whether the item is flagged (by a stage, with action review or drop, or by hand)."""
        p = self._pos.get_indexer([item_id])[0]
        return p >= 0 and (self.action[p] != "keep" or bool(self.manual[p]))

    def status_of(self, positions: np.ndarray) -> list[str]:
        return [STATUSES[c] for c in self.status[positions]]

    def position(self, item_id: str) -> int:
        p = int(self._pos.get_indexer([item_id])[0])
        if p < 0:
            raise CurateError(f"item {item_id!r} is not in this run")
        return p

    def flags_of(self, stage_dir: str) -> np.ndarray:
        """The stage's flag per item (None where it flagged nothing)."""
        return self._flag_cols[stage_dir]

    def share(self, reviewer: str, reviewers: list[str], overlap: float) -> np.ndarray | None:
        """The items in ``reviewer``'s share of a split queue (see :mod:`curate.review.reviewers`), cached."""
        from curate.review.reviewers import assignment

        if reviewer not in reviewers:
            return None
        key = (tuple(reviewers), float(overlap))
        with self._cache_lock:
            got = self._shares.get(key)
        if got is None:
            got = assignment(self.ids, list(reviewers), overlap)
            with self._cache_lock:
                self._shares[key] = got
        return got[reviewer]

    # -- metadata for the filters ------------------------------------------------------------------
    def score_columns(self) -> list[str]:
        """Index columns of the declared scores, ``<dir>.<column>``."""
        return [f"{s.dir}.{c}" for s in self.stages for c in s.score_columns()]

    def reasons(self, view: str = "flagged") -> dict[str, int]:
        """``"<stage dir>:<flag>"`` -> number of items in the view with that flag."""
        if view in self._reasons:
            return self._reasons[view]
        mask = self.view_mask(view)
        out: dict[str, int] = {}
        for d, flags in self._flag_cols.items():
            vals, counts = np.unique(flags[mask & pd.notna(flags)].astype(str), return_counts=True)
            for flag, n in zip(vals, counts):
                out[f"{d}:{flag}"] = int(n)
        self._reasons[view] = dict(sorted(out.items(), key=lambda kv: -kv[1]))
        return self._reasons[view]

    def stages_with_flags(self, view: str = "flagged") -> list[str]:
        return sorted({r.split(":", 1)[0] for r in self.reasons(view)}, key=self.stage_dirs.index)

    # -- selection --------------------------------------------------------------------------------
    def view_mask(self, view: str) -> np.ndarray:
        if view == "review":
            return self._is["review"] | (self.manual & ~self._is["drop"])
        if view == "audit":
            return self._is["drop"].copy()
        if view == "flagged":
            return ~self._is["keep"] | self.manual
        if view == "all":
            return np.ones(len(self.action), bool)
        raise CurateError(f"view: expected one of {', '.join(VIEWS)}, got {view!r}")

    def _search_mask(self, text: str) -> np.ndarray:
        if self._haystack is None:
            cols = ["id", "source", "text", "label", "reasons", *[f"{d}:detail" for d in self.stage_dirs]]
            parts = [self.index[c].fillna("").astype(str) for c in cols]
            hay = parts[0]
            for p in parts[1:]:
                hay = hay + "\n" + p
            self._haystack = pa.array(hay.str.lower().to_numpy(), pa.large_string())
        key = text.lower()
        with self._cache_lock:
            got = self._searches.get(key)
        if got is None:  # the index never changes: a search's mask can be kept
            got = pc.match_substring(self._haystack, key).to_numpy(zero_copy_only=False)
            with self._cache_lock:
                self._searches[key] = got
                while len(self._searches) > 16:
                    self._searches.popitem(last=False)
        manual = [self._pos.get_loc(i) for i, r in self.manual_reasons.items() if key in r.lower() and i in self._pos]
        if manual:
            got = got.copy()
            got[manual] = True
        return got

    def select(self, q: Query) -> np.ndarray:
        """Positions (into the index) of the items matching ``q``, in display order."""
        self.refresh()
        mask = self.view_mask(q.view)
        if q.share is not None:
            mask &= q.share
        if q.stages:
            m = np.zeros(len(mask), bool)
            for d in q.stages:
                if d in self._has_flag:
                    m |= self._has_flag[d]
            mask &= m
        if q.reasons:
            m = np.zeros(len(mask), bool)
            for r in q.reasons:
                if r == MANUAL_REASON:
                    m |= self.manual
                    continue
                d, _, flag = r.partition(":")
                if d in self._flag_cols:
                    m |= self._flag_cols[d] == flag
            mask &= m
        if q.statuses:
            mask &= np.isin(self.status, [_STATUS_CODE[s] for s in q.statuses])
        if q.score and q.score in self.index and (q.score_min is not None or q.score_max is not None):
            v = self.index[q.score].to_numpy()
            if q.score_min is not None:
                mask &= v >= q.score_min
            if q.score_max is not None:
                mask &= v <= q.score_max
        if q.search.strip():
            mask = mask & self._search_mask(q.search.strip())
        pos = np.flatnonzero(mask)
        if q.sort and q.sort in self.index and len(pos):
            v = self.index[q.sort].to_numpy()[pos]
            key = np.where(np.isnan(v), np.inf if not q.descending else -np.inf, v)
            order = np.argsort(-key if q.descending else key, kind="stable")
            pos = pos[order]
        return pos

    @staticmethod
    def page(positions: np.ndarray, page: int, size: int) -> np.ndarray:
        return positions[page * size:(page + 1) * size]

    # -- progress ----------------------------------------------------------------------------------
    def progress(self, view: str = "review", share: np.ndarray | None = None) -> dict[str, tuple[int, int]]:
        """``{"all": (reviewed, total), <stage dir>: (reviewed, total)}`` for the items in the view."""
        mask = self.view_mask(view)
        if share is not None:
            mask = mask & share
        decided = self.status != 0
        out = {"all": (int((mask & decided).sum()), int(mask.sum()))}
        for d, has in self._has_flag.items():
            m = mask & has
            if m.any():
                out[d] = (int((m & decided).sum()), int(m.sum()))
        return out

    # -- records -----------------------------------------------------------------------------------
    def rows(self, positions: np.ndarray) -> list[dict]:
        """Index rows of ``positions`` as dicts, with ``pos``, ``status``, ``decision`` (latest row or
        None) and ``manual`` (the reason of a manual flag, or None)."""
        if self._columns is None:  # plain arrays: a page's rows without pandas' per-row overhead
            self._columns = {c: self.index[c].to_numpy() for c in self.index.columns}
        out = []
        for p in positions:
            rec = {}
            for k, col in self._columns.items():
                v = col[p]
                rec[k] = None if (v is None or (isinstance(v, float) and v != v)) else (v.item() if isinstance(v, np.generic) else v)
            rec["pos"] = int(p)
            rec["status"] = STATUSES[self.status[p]]
            rec["decision"] = self.latest.get(rec["id"])
            rec["manual"] = self.manual_reasons.get(rec["id"]) if self.manual[p] else None
            out.append(rec)
        return out

    def images(self, positions: np.ndarray) -> dict[str, bytes | None]:
        """Encoded image bytes of the items at ``positions`` (read from their data shards only)."""
        shard, row = self.index["shard"].to_numpy(), self.index["row"].to_numpy()
        return read_images(self.run, [(int(shard[p]), int(row[p]), self.ids[p]) for p in positions])

    def thumbnails(self, positions: np.ndarray, size: int = 224) -> dict[str, bytes | None]:
        """Small JPEG/PNG thumbnails (``None`` for items without a decodable image), LRU-cached."""
        with self._cache_lock:
            have = {self.ids[p]: self._thumbs[(self.ids[p], size)] for p in positions if (self.ids[p], size) in self._thumbs}
        want = [p for p in positions if self.ids[p] not in have]
        if want:
            made = {item: (make_thumbnail(data, size) if data else None)
                    for item, data in self.images(np.asarray(want)).items()}
            have.update(made)
            with self._cache_lock:
                for item, th in made.items():
                    self._thumbs[(item, size)] = th
                while len(self._thumbs) > 4096:
                    self._thumbs.popitem(last=False)
        return {self.ids[p]: have.get(self.ids[p]) for p in positions}

    def prefetch_thumbnails(self, positions: np.ndarray, size: int = 224) -> None:
        """Make the thumbnails of ``positions`` in a background thread (e.g. the next page's)."""
        with self._cache_lock:
            todo = [p for p in positions if (self.ids[p], size) not in self._thumbs]
        if todo:
            threading.Thread(target=self.thumbnails, args=(np.asarray(todo), size), daemon=True).start()

    def details(self, pos: int) -> dict:
        """Every column of the item's record (but the image) and of each stage's row (LRU-cached)."""
        with self._cache_lock:
            got = self._details.get(pos)
        if got is None:
            got = item_details(self, pos)
            with self._cache_lock:
                self._details[pos] = got
                while len(self._details) > 64:
                    self._details.popitem(last=False)
        return got

    # -- duplicate groups ---------------------------------------------------------------------------
    def group_stages(self) -> list[str]:
        """Stage dirs that declare a duplicate group."""
        return [s.dir for s in self.stages if s.has_groups]

    def groups(self, stage_dir: str) -> pd.DataFrame:
        """The stage's duplicate groups of two or more items: ``group``, ``members`` (positions, the
        stage's representative first), ``size``, ``flagged`` (members with this stage's flag)."""
        if stage_dir not in self._groups:
            sv = self.by_dir[stage_dir]
            g = self.index[sv.index_column("duplicate_group")].to_numpy()
            rep = (self.index[sv.index_column("representative")].to_numpy() if "representative" in sv.roles
                   else np.zeros(len(g), bool))
            has = pd.notna(g)
            pos = np.flatnonzero(has)
            df = pd.DataFrame({"group": g[has], "pos": pos, "rep": rep[has], "flagged": pd.notna(self._flag_cols[stage_dir][has])})
            df = df.sort_values(["group", "rep", "pos"], ascending=[True, False, True], kind="stable")
            agg = df.groupby("group", sort=False).agg(members=("pos", list), flagged=("flagged", "sum"),
                                                       first=("pos", "min"))
            agg["size"] = agg["members"].map(len)
            agg = agg[agg["size"] > 1].sort_values("first").reset_index()
            self._groups[stage_dir] = agg[["group", "members", "size", "flagged"]]
        return self._groups[stage_dir]

    def group_of(self, stage_dir: str, pos: int) -> dict | None:
        """The duplicate group (as in :meth:`groups`) the item at ``pos`` belongs to in a stage, or None."""
        sv = self.by_dir[stage_dir]
        g = self.index[sv.index_column("duplicate_group")].iat[pos]
        if g is None or (isinstance(g, float) and np.isnan(g)):
            return None
        groups = self.groups(stage_dir)
        hit = groups.loc[groups["group"] == g]
        return None if hit.empty else hit.iloc[0].to_dict()

    def keepers(self, stage_dir: str, group: dict) -> list[int]:
        """Positions of the group's kept item(s) now: a reviewer's keeper if any, else the stage's."""
        members = list(group["members"])
        chosen = [p for p in members if _is_keeper(self.latest.get(self.ids[p]), stage_dir, group["group"], "accepted")]
        if chosen:
            return chosen
        sv = self.by_dir[stage_dir]
        rep = self.index[sv.index_column("representative")].to_numpy() if "representative" in sv.roles else None
        return [p for p in members if rep is not None and rep[p]
                and not _is_keeper(self.latest.get(self.ids[p]), stage_dir, group["group"], "rejected")]

    def keep_instead(self, stage_dir: str, pos: int, *, reviewer: str | None = None) -> list[int]:
        """Make the item at ``pos`` the kept one of its duplicate group; the group's keeper(s) till now are
        dropped as its duplicates. One transaction; returns the row ids (for undo)."""
        group = self.group_of(stage_dir, pos)
        if group is None:
            raise CurateError(f"item {self.ids[pos]} is in no duplicate group of {stage_dir}")
        item = self.ids[pos]
        rows = [{"item_id": item, "decision": "accepted", "kind": "keeper", "stage": stage_dir,
                 "group": group["group"], "reviewer": reviewer, "note": "kept instead of its duplicates"}]
        for p in self.keepers(stage_dir, group):
            if p != pos:
                rows.append({"item_id": self.ids[p], "decision": "rejected", "kind": "keeper", "stage": stage_dir,
                             "group": group["group"], "reviewer": reviewer, "note": f"duplicate of {item} (reviewer's keeper)"})
        out = self.store.decide_rows(rows)
        self.refresh()
        return out

    def not_duplicates(self, stage_dir: str, pos: int, *, reviewer: str | None = None) -> list[int]:
        """Say the group of the item at ``pos`` is no duplicate group: every member the stage flagged (and
        any the reviewer dropped as a duplicate) loses this stage's flag. Returns the row ids."""
        group = self.group_of(stage_dir, pos)
        if group is None:
            raise CurateError(f"item {self.ids[pos]} is in no duplicate group of {stage_dir}")
        flags = self._flag_cols[stage_dir]
        rows = [{"item_id": self.ids[p], "decision": "accepted", "kind": "not_duplicate", "stage": stage_dir,
                 "group": group["group"], "reviewer": reviewer, "note": "not duplicates"}
                for p in group["members"]
                if pd.notna(flags[p]) or (self.latest.get(self.ids[p]) and self.latest[self.ids[p]].kind == "keeper")]
        out = self.store.decide_rows(rows)
        self.refresh()
        return out


def _none_for_nan(a: np.ndarray) -> np.ndarray:
    """An object array with None (not NaN) where values are missing."""
    return np.where(pd.notna(a), a, None).astype(object)


def _is_keeper(d: Decision | None, stage_dir: str, group: str, decision: str) -> bool:
    return d is not None and d.kind == "keeper" and d.stage == stage_dir and d.grp == str(group) and d.decision == decision


def read_images(run: RunDir, where: list[tuple[int, int, str]]) -> dict[str, bytes | None]:
    """``[(shard, row, id)]`` -> ``{id: image bytes}``, reading each needed shard's image column once."""
    by_shard: dict[int, list[tuple[int, str]]] = {}
    for shard, row, item in where:
        by_shard.setdefault(shard, []).append((row, item))
    out: dict[str, bytes | None] = {}
    for shard, items in by_shard.items():
        t = read_data_shard(run, shard, ["image"])
        col = t.column("image").take(pa.array([r for r, _ in items], pa.int64())).to_pylist()
        for (_, item), data in zip(items, col):
            out[item] = data
    return out


def make_thumbnail(data: bytes, size: int = 224) -> bytes | None:
    """Decode ``data`` and return a thumbnail (PNG if the source has alpha, else JPEG); None if undecodable."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.draft("RGB", (size, size))  # JPEG: decode at a reduced scale
            im.thumbnail((size, size))
            buf = io.BytesIO()
            if im.mode in ("RGBA", "LA", "P"):
                im.convert("RGBA").save(buf, "PNG")
            else:
                im.convert("RGB").save(buf, "JPEG", quality=85)
            return buf.getvalue()
    except Exception as exc:  # noqa: BLE001 - undecodable images are shown as a placeholder
        log.debug("thumbnail failed: %s", exc)
        return None


def item_details(queue: ReviewQueue, pos: int) -> dict:
    """Everything about one item: ``{"record": {...but image}, "stages": {dir: {column: value}}}``."""
    run, idx = queue.run, queue.index
    shard, row = int(idx["shard"].iat[pos]), int(idx["row"].iat[pos])
    cols = [c for c in pq.read_schema(run.data_shard(shard)).names if c != "image"]
    rec = read_data_shard(run, shard, cols).slice(row, 1).to_pylist()[0]
    out: dict[str, Any] = {"record": rec, "stages": {}}
    for sv in queue.stages:
        t = read_annotation_shard(run, sv.entry, shard, None)
        if t.num_rows > row:
            srow = t.slice(row, 1).to_pylist()[0]
            srow.pop("id", None)
            out["stages"][sv.dir] = srow
    return out


_QUEUES: dict[str, tuple[ReviewQueue, tuple | None]] = {}
_QLOCK = threading.Lock()


def _stamp(run_root: str | Path) -> tuple[int, int]:
    st = RunDir(run_root).manifest_path.stat()
    return st.st_mtime_ns, st.st_size


def open_queue(run_root: str | Path) -> ReviewQueue:
    """A process-wide queue per run directory (rebuilt when the run's manifest file changes)."""
    key = str(Path(run_root).resolve())
    with _QLOCK:
        got = _QUEUES.get(key)
        stamp = _stamp(run_root) if RunDir(run_root).exists() else None
        if got is None or got[1] != stamp:
            got = (ReviewQueue(run_root), stamp)
            _QUEUES[key] = got
        return got[0]
