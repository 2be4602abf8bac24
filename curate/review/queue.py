"""The review queue: an index of every flagged item, its status from ``review.db``, filters and pages.

The index has one row per item that some stage flagged with ``review`` or ``drop`` (final action from
:mod:`curate.policy`): where it lives (``shard``, ``row``), ``id``, ``source``, ``text``, ``label``,
its final ``action``, ``reasons`` and ``details``, and per stage directory ``d``: ``d:flag``,
``d:action`` and every floating-point stage column as ``d.column`` (the scores). It is built from the
shards once per run state and cached in ``runs/<name>/cache/``; image bytes are never in it: a page
reads only its own items' images.

Nothing here knows about particular stages: flags, details and scores are read generically. The item
view recognises a few column-name conventions (see :func:`item_details`).
"""

from __future__ import annotations

import difflib
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

from curate.decisions import STATUSES, DecisionStore
from curate.errors import CurateError
from curate.policy import completed_stage_dirs, shard_outcome
from curate.rundir import RunDir, shard_name, write_table
from curate.shards import read_stage

log = logging.getLogger(__name__)

INDEX_VERSION = 1
_RECORD_COLS = ["id", "source", "text", "label", "width", "height"]
_STATUS_CODE = {s: i for i, s in enumerate(STATUSES)}  # pending 0, accepted 1, rejected 2

#: Views of the queue: items a person must settle, items a stage dropped (audit), or both.
VIEWS = {"review": ("review",), "audit": ("drop",), "all": ("review", "drop")}


# -- the index -------------------------------------------------------------------------------------
def _index_key(manifest: dict, stage_dirs: list[str]) -> str:
    stages = [(s.get("dir"), s.get("fingerprint"), s.get("finished")) for s in manifest.get("stages", [])
              if s.get("dir") in stage_dirs]
    blob = json.dumps([INDEX_VERSION, manifest.get("input", {}).get("fingerprint"), stages], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _is_score(t: pa.DataType) -> bool:
    return pa.types.is_floating(t)


def build_index(run: RunDir, *, use_cache: bool = True, progress: bool = False) -> pd.DataFrame:
    """The index of flagged items (see the module docstring), from the cache when the run is unchanged."""
    manifest = run.require()
    stage_dirs = completed_stage_dirs(run)
    key = _index_key(manifest, stage_dirs)
    cache = run.cache_dir / f"review-index-{key}.parquet"
    if use_cache and cache.is_file():
        try:
            return pq.read_table(cache).to_pandas()
        except (OSError, pa.ArrowInvalid) as exc:  # a damaged cache is rebuilt
            log.warning("review index cache %s unreadable (%s); rebuilding", cache, exc)
    n_shards = len(run.data_shards())
    parts: list[pd.DataFrame] = []
    from tqdm.auto import tqdm

    for shard in tqdm(range(n_shards), desc="review index", unit="shard", disable=not progress):
        out = shard_outcome(run, shard, stage_dirs)
        actions = np.asarray(out.actions, dtype=object)
        rows = np.flatnonzero(actions != "keep")
        if len(rows) == 0:
            continue
        take = pa.array(rows, pa.int64())
        rec = pq.read_table(run.data_shard(shard), columns=_RECORD_COLS).take(take)
        cols: dict[str, Any] = {c: rec.column(c).to_numpy(zero_copy_only=False) for c in _RECORD_COLS}
        cols["shard"] = np.full(len(rows), shard, np.int32)
        cols["row"] = rows.astype(np.int32)
        cols["action"] = actions[rows]
        cols["reasons"] = ["; ".join(out.reasons[i]) for i in rows]
        cols["details"] = ["\n".join(d for d in out.details[i] if d) for i in rows]
        for d in stage_dirs:
            st = pq.read_table(run.stage_dir(d) / shard_name(shard)).take(take)
            cols[f"{d}:flag"] = st.column("flag").to_numpy(zero_copy_only=False)
            cols[f"{d}:action"] = st.column("action").to_numpy(zero_copy_only=False)
            for f in st.schema:
                if _is_score(f.type):
                    cols[f"{d}.{f.name}"] = st.column(f.name).to_numpy(zero_copy_only=False).astype(np.float64)
        parts.append(pd.DataFrame(cols))
    if parts:
        index = pd.concat(parts, ignore_index=True)
    else:
        index = pd.DataFrame({c: pd.Series(dtype=object) for c in [*_RECORD_COLS, "action", "reasons", "details"]})
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
    reasons: list[str] = field(default_factory=list)     # "<stage dir>:<flag>"
    statuses: list[str] = field(default_factory=list)    # pending / accepted / rejected
    score: str | None = None                             # score column "<dir>.<col>" to filter and sort by
    score_min: float | None = None
    score_max: float | None = None
    search: str = ""                                     # case-insensitive, in text, label, id, source, reasons, details
    sort: str | None = None                              # score column; None keeps run order
    descending: bool = False


class ReviewQueue:
    """The index of one run plus the live status of each item (synced incrementally from ``review.db``)."""

    def __init__(self, run_root: str | Path, *, progress: bool = False):
        self.run = RunDir(run_root)
        self.manifest = self.run.require()
        if self.manifest.get("status") != "done":
            raise CurateError(f"{self.run.root}: the run did not finish; complete it with 'curate run' before reviewing")
        self.index = build_index(self.run, progress=progress)
        self.stage_dirs = completed_stage_dirs(self.run)
        self.store = DecisionStore(self.run.review_db)
        n = len(self.index)
        self._pos = pd.Index(self.index["id"])
        self.status = np.zeros(n, np.int8)
        self.notes: dict[str, str] = {}
        self.captions: dict[str, str] = {}
        self._synced = 0
        self._lock = threading.Lock()
        self._cache_lock = threading.Lock()  # sessions share this object: guard the LRU caches
        self._thumbs: OrderedDict[str, bytes | None] = OrderedDict()
        self._haystack: pa.Array | None = None
        self._stage_cache: dict[tuple, pa.Table] = {}
        self._reasons: dict[str, dict[str, int]] = {}
        self._searches: OrderedDict[str, np.ndarray] = OrderedDict()
        self._details: OrderedDict[int, dict] = OrderedDict()
        self.action = self.index["action"].to_numpy()
        self.refresh()

    # -- status ---------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Pull decisions written since the last sync (by anyone, any process)."""
        with self._lock:
            if self.store.max_id() == self._synced:
                return
            new = self.store.latest(since=self._synced)
            if not new:
                return
            ids = list(new)
            pos = self._pos.get_indexer(ids)
            for item, p in zip(ids, pos):
                d = new[item]
                if p >= 0:
                    self.status[p] = _STATUS_CODE[d.decision]
                _set(self.notes, item, d.note)
                _set(self.captions, item, d.caption)
            self._synced = max(max(d.id for d in new.values()), self._synced)

    def decide(self, item_ids: Iterable[str], decision: str, *, reviewer: str | None = None,
               note: str | None = None, caption: str | None = None) -> list[int]:
        """Record a decision for items; returns the new row ids (for undo)."""
        rows = self.store.decide(item_ids, decision, reviewer=reviewer, note=note, caption=caption)
        self.refresh()
        return rows

    def undo(self, row_ids: Iterable[int], *, reviewer: str | None = None) -> tuple[list[int], list[str]]:
        rows, skipped = self.store.undo(row_ids, reviewer=reviewer)
        self.refresh()
        return rows, skipped

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._pos

    def status_of(self, positions: np.ndarray) -> list[str]:
        return [STATUSES[c] for c in self.status[positions]]

    # -- metadata for the filters ------------------------------------------------------------------
    def score_columns(self) -> list[str]:
        return [c for c in self.index.columns if "." in c and c.split(".", 1)[0] in self.stage_dirs]

    def reasons(self, view: str = "all") -> dict[str, int]:
        """``"<stage dir>:<flag>"`` -> number of items in the view with that flag (computed once per view)."""
        if view in self._reasons:
            return self._reasons[view]
        mask = self.view_mask(view)
        out: dict[str, int] = {}
        for d in self.stage_dirs:
            col = f"{d}:flag"
            if col in self.index:
                for flag, n in self.index.loc[mask, col].value_counts().items():
                    out[f"{d}:{flag}"] = int(n)
        self._reasons[view] = dict(sorted(out.items(), key=lambda kv: -kv[1]))
        return self._reasons[view]

    def stages_with_flags(self, view: str = "all") -> list[str]:
        return sorted({r.split(":", 1)[0] for r in self.reasons(view)}, key=self.stage_dirs.index)

    # -- selection --------------------------------------------------------------------------------
    def view_mask(self, view: str) -> np.ndarray:
        if view not in VIEWS:
            raise CurateError(f"view: expected one of {', '.join(VIEWS)}, got {view!r}")
        return np.isin(self.action, VIEWS[view])

    def _search_mask(self, text: str) -> np.ndarray:
        if self._haystack is None:
            parts = [self.index[c].fillna("").astype(str) for c in ("id", "source", "text", "label", "reasons", "details")]
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
        return got

    def select(self, q: Query) -> np.ndarray:
        """Positions (into the index) of the items matching ``q``, in display order."""
        self.refresh()
        mask = self.view_mask(q.view)
        if q.stages:
            m = np.zeros(len(mask), bool)
            for d in q.stages:
                if f"{d}:flag" in self.index:
                    m |= self.index[f"{d}:flag"].notna().to_numpy()
            mask &= m
        if q.reasons:
            m = np.zeros(len(mask), bool)
            for r in q.reasons:
                d, _, flag = r.partition(":")
                if f"{d}:flag" in self.index:
                    m |= (self.index[f"{d}:flag"] == flag).to_numpy()
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
    def progress(self, view: str = "review") -> dict[str, tuple[int, int]]:
        """``{"all": (reviewed, total), <stage dir>: (reviewed, total)}`` for the items in the view."""
        mask = self.view_mask(view)
        decided = self.status != 0
        out = {"all": (int((mask & decided).sum()), int(mask.sum()))}
        for d in self.stage_dirs:
            col = f"{d}:flag"
            if col not in self.index:
                continue
            m = mask & self.index[col].notna().to_numpy()
            if m.any():
                out[d] = (int((m & decided).sum()), int(m.sum()))
        return out

    # -- records -----------------------------------------------------------------------------------
    def rows(self, positions: np.ndarray) -> list[dict]:
        """Index rows of ``positions`` as dicts, with ``status``, ``note`` and ``chosen_caption``."""
        sub = self.index.iloc[positions]
        out = []
        for p, rec in zip(positions, sub.to_dict("records")):
            rec = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in rec.items()}
            rec["pos"] = int(p)
            rec["status"] = STATUSES[self.status[p]]
            rec["note"] = self.notes.get(rec["id"])
            rec["chosen_caption"] = self.captions.get(rec["id"])
            out.append(rec)
        return out

    def images(self, positions: np.ndarray) -> dict[str, bytes | None]:
        """Encoded image bytes of the items at ``positions`` (read from their data shards only)."""
        return read_images(self.run, [(int(self.index["shard"].iat[p]), int(self.index["row"].iat[p]),
                                       self.index["id"].iat[p]) for p in positions])

    def thumbnails(self, positions: np.ndarray, size: int = 224) -> dict[str, bytes | None]:
        """Small JPEG/PNG thumbnails (``None`` for items without a decodable image), LRU-cached."""
        ids = self.index["id"].to_numpy()
        with self._cache_lock:
            have = {ids[p]: self._thumbs[ids[p]] for p in positions if ids[p] in self._thumbs}
        want = [p for p in positions if ids[p] not in have]
        if want:
            made = {item: (make_thumbnail(data, size) if data else None)
                    for item, data in self.images(np.asarray(want)).items()}
            have.update(made)
            with self._cache_lock:
                self._thumbs.update(made)
                while len(self._thumbs) > 4096:
                    self._thumbs.popitem(last=False)
        return {ids[p]: have.get(ids[p]) for p in positions}

    def stage_columns(self, stage_dir: str, columns: list[str]) -> pa.Table:
        """``id`` plus ``columns`` of every row of a stage (cached; used for clusters)."""
        key = (stage_dir, tuple(columns))
        if key not in self._stage_cache:
            self._stage_cache[key] = read_stage(self.run, stage_dir, ["id", *columns])
        return self._stage_cache[key]

    def details(self, pos: int) -> dict:
        """:func:`item_details` of the item at ``pos`` (LRU-cached: stage outputs do not change)."""
        with self._cache_lock:
            got = self._details.get(pos)
        if got is None:
            got = item_details(self, pos)
            with self._cache_lock:
                self._details[pos] = got
                while len(self._details) > 64:
                    self._details.popitem(last=False)
        return got

    def stage_scores(self) -> dict[str, list[str]]:
        """Per stage dir, its floating-point output columns (candidates for a threshold)."""
        out = {}
        for d in self.stage_dirs:
            paths = sorted(self.run.stage_dir(d).glob("part-*.parquet"))
            names: list[str] = []
            for p in paths:
                names = [f.name for f in pq.read_schema(p) if _is_score(f.type)]
                if names:
                    break
            if names:
                out[d] = names
        return out

    def stage_entry(self, stage_dir: str) -> dict:
        for s in self.manifest.get("stages", []):
            if s.get("dir") == stage_dir:
                return s
        raise CurateError(f"no stage {stage_dir!r} in {self.run.root}")


def _set(d: dict, key: str, value: str | None) -> None:
    if value:
        d[key] = value
    else:
        d.pop(key, None)


def read_images(run: RunDir, where: list[tuple[int, int, str]]) -> dict[str, bytes | None]:
    """``[(shard, row, id)]`` -> ``{id: image bytes}``, reading each needed shard's image column once."""
    by_shard: dict[int, list[tuple[int, str]]] = {}
    for shard, row, item in where:
        by_shard.setdefault(shard, []).append((row, item))
    out: dict[str, bytes | None] = {}
    for shard, items in by_shard.items():
        t = pq.read_table(run.data_shard(shard), columns=["image"])
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


# -- the item view ---------------------------------------------------------------------------------
_CLUSTER_NAMES = ("cluster", "cluster_id", "dup_cluster", "duplicate_cluster", "group")
_REP_BOOL_NAMES = ("representative", "is_representative", "is_rep", "keep_representative")
_REP_ID_NAMES = ("duplicate_of", "dup_of", "representative_id", "rep_id", "representative")
_SUGGEST_NAMES = ("suggested_label", "predicted_label", "suggestion")
_CAPTION_NAMES = ("caption", "repaired_caption", "caption_repaired", "repaired_text", "text_repaired", "clean_caption",
                  "caption_clean")


def _pick(names: Iterable[str], schema: pa.Schema, pred) -> str | None:
    for n in names:
        i = schema.get_field_index(n)
        if i >= 0 and pred(schema.field(i).type):
            return n
    return None


def item_details(queue: ReviewQueue, pos: int) -> dict:
    """Everything about one item for the item view.

    Returns ``{"record": {...}, "stages": {dir: {column: value}}, "clusters": [...], "suggestions": [...],
    "captions": [...]}``. Column-name conventions recognised in a stage's output:

    * a duplicate cluster: a column ``cluster_id`` / ``cluster`` (members share a value) with the
      representative marked by a boolean ``is_representative`` / ``representative`` column; or a string
      ``duplicate_of`` / ``dup_of`` column (the id of the item kept; the group is that item and every
      item pointing at it), which wins when there is no boolean marker (a ``cluster`` column next to
      ``dup_of`` is then taken as a coarse grouping, e.g. k-means, not a duplicate group).
    * a suggested label: ``suggested_label`` / ``predicted_label``.
    * a repaired caption: a string column ``caption`` / ``repaired_caption`` / ``caption_repaired`` /
      ``repaired_text`` / ``clean_caption`` whose value differs from the record's text.
    """
    run, idx = queue.run, queue.index
    shard, row = int(idx["shard"].iat[pos]), int(idx["row"].iat[pos])
    item = idx["id"].iat[pos]
    cols = [c for c in pq.read_schema(run.data_shard(shard)).names if c != "image"]
    rec = pq.read_table(run.data_shard(shard), columns=cols).slice(row, 1).to_pylist()[0]
    rec["image"] = read_images(run, [(shard, row, item)])[item]
    out: dict[str, Any] = {"record": rec, "stages": {}, "clusters": [], "suggestions": [], "captions": []}
    for d in queue.stage_dirs:
        t = pq.read_table(run.stage_dir(d) / shard_name(shard))
        if t.num_rows <= row:
            continue
        srow = t.slice(row, 1).to_pylist()[0]
        srow.pop("id", None)
        out["stages"][d] = srow
        schema = t.schema
        if srow.get("flag") is None:
            continue
        # duplicate clusters
        cl = _pick(_CLUSTER_NAMES, schema, lambda ty: pa.types.is_integer(ty) or pa.types.is_string(ty))
        rep_bool = _pick(_REP_BOOL_NAMES, schema, pa.types.is_boolean)
        rep_id = _pick(_REP_ID_NAMES, schema, pa.types.is_string)
        members = None
        if cl is not None and rep_bool is None and rep_id is not None:
            cl = None  # a coarse grouping next to a duplicate-of pointer
        if cl is not None and srow.get(cl) is not None:
            cols = [cl] + [c for c in (rep_bool, rep_id) if c]
            st = queue.stage_columns(d, cols)
            members = np.flatnonzero(pc.equal(st.column(cl), pa.scalar(srow[cl], st.column(cl).type)).to_numpy(zero_copy_only=False))
        elif rep_id is not None and srow.get(rep_id) is not None:
            st = queue.stage_columns(d, [rep_id])
            ids = st.column("id")
            target = srow[rep_id]
            m = pc.or_kleene(pc.equal(ids, target), pc.equal(st.column(rep_id), pa.scalar(target)))
            members = np.flatnonzero(pc.fill_null(m, False).to_numpy(zero_copy_only=False))
            cols = [rep_id]
        if members is not None and len(members):
            members = members[:24]
            ids = st.column("id").take(pa.array(members, pa.int64())).to_pylist()
            reps = set()
            if rep_bool:
                flags = st.column(rep_bool).take(pa.array(members, pa.int64())).to_pylist()
                reps = {i for i, f in zip(ids, flags) if f}
            elif rep_id:
                targets = st.column(rep_id).take(pa.array(members, pa.int64())).to_pylist()
                reps = {t for t in targets if t} | {i for i, t in zip(ids, targets) if t is None and cl is not None}
            locs = _global_rows_to_shard(run, members)
            images = read_images(run, [(s, r, i) for (s, r), i in zip(locs, ids)])
            texts = _read_cells(run, [(s, r) for s, r in locs], ["text", "label"])
            out["clusters"].append({
                "stage": d, "column": cl or rep_id, "value": srow.get(cl) if cl else srow.get(rep_id),
                "members": [{"id": i, "representative": i in reps, "this": i == item, "image": images.get(i),
                             "text": tx["text"], "label": tx["label"]} for i, tx in zip(ids, texts)],
            })
        # suggested labels
        sug = _pick(_SUGGEST_NAMES, schema, lambda ty: True)
        if sug and srow.get(sug) is not None:
            out["suggestions"].append({"stage": d, "label": rec.get("label"), "suggested": srow[sug],
                                       "detail": srow.get("detail")})
        # repaired captions
        for f in schema:
            if f.name in ("flag", "action", "detail", "id") or not pa.types.is_string(f.type):
                continue
            if f.name in _CAPTION_NAMES and srow.get(f.name) and srow[f.name] != rec.get("text"):
                out["captions"].append({"stage": d, "column": f.name, "original": rec.get("text") or "",
                                        "repaired": srow[f.name],
                                        "diff": caption_diff(rec.get("text") or "", srow[f.name])})
    return out


def _global_rows_to_shard(run: RunDir, rows: np.ndarray) -> list[tuple[int, int]]:
    sizes = [pq.ParquetFile(p).metadata.num_rows for p in run.data_shards()]
    starts = np.cumsum([0, *sizes])
    shards = np.searchsorted(starts, rows, side="right") - 1
    return [(int(s), int(r - starts[s])) for s, r in zip(shards, rows)]


def _read_cells(run: RunDir, where: list[tuple[int, int]], columns: list[str]) -> list[dict]:
    out = []
    for s, r in where:
        out.append(pq.read_table(run.data_shard(s), columns=columns).slice(r, 1).to_pylist()[0])
    return out


def caption_diff(original: str, repaired: str) -> str:
    """A word-level diff: ``[-removed-]`` and ``{+added+}`` (plain text, for display as text)."""
    a, b = original.split(), repaired.split()
    parts = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append(" ".join(a[i1:i2]))
        else:
            if i2 > i1:
                parts.append("[-" + " ".join(a[i1:i2]) + "-]")
            if j2 > j1:
                parts.append("{+" + " ".join(b[j1:j2]) + "+}")
    return " ".join(parts)


_QUEUES: dict[str, ReviewQueue] = {}
_QLOCK = threading.Lock()


def open_queue(run_root: str | Path) -> ReviewQueue:
    """A process-wide queue per run directory (rebuilt when the run's manifest changes)."""
    key = str(Path(run_root).resolve())
    with _QLOCK:
        q = _QUEUES.get(key)
        if q is not None and q.manifest != RunDir(run_root).load_manifest():
            q = None
        if q is None:
            q = ReviewQueue(run_root)
            _QUEUES[key] = q
        return q
