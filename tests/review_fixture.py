"""A synthetic run directory for the review tests and benchmark: data shards, five stages' shards and a
typed manifest whose stage entries declare their outputs (roles, scores, edit flags) like real stages,
written with the ``curate.rundir`` helpers (no models, no network, a fraction of a second).

Stage layout (every stage writes ``flag``/``action``/``detail`` like a real one), for item ``i``:

* ``00-text_quality``: ``too_short`` (review) when the caption has under 3 words; score ``n_words``
  (param ``min_words``, flags below).
* ``01-near_dup``: items ``i % 10 == 1`` are near-duplicates (review) of item ``i - 1`` (the group's
  representative): ``cluster_id`` (duplicate_group), ``is_representative`` (representative), score
  ``similarity`` (param ``threshold``, flags above).
* ``02-label_noise``: items ``i % 7 == 3`` get ``label_issue`` (review), ``suggested_label`` with
  ``suggested_prob`` (its confidence) and score ``label_quality`` (param ``min_quality``, flags below).
* ``03-caption_repair``: items ``i % 11 == 5`` get ``caption_repaired`` (review; an edit flag) and a
  ``caption`` (replacement_text).
* ``04-image_quality``: ``too_dark`` (drop) when ``luma_mean`` < 15 (items ``i % 13 == 7``), else
  ``blurry`` (review) when ``sharpness`` < 30; ``sharpness = (i * 53) % 200``.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pyarrow as pa
from PIL import Image

from curate.manifest import ColumnSpec, InputEntry, Manifest, ScoreSpec, StageEntry, StageOutputs
from curate.record import RECORD_SCHEMA, content_id
from curate.rundir import RunDir, shard_name, write_table

LABELS = ["cat", "dog", "frog", "ship"]
HTML_CAPTION = "<img src=x onerror=alert(1)> <b>bold</b> *not italic*"
DIRS = ["00-text_quality", "01-near_dup", "02-label_noise", "03-caption_repair", "04-image_quality"]


def _png(i: int) -> bytes:
    im = Image.new("RGB", (48, 40), ((i * 37) % 256, (i * 91) % 256, (i * 53) % 256))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _caption(i: int) -> str:
    if i == 3:
        return HTML_CAPTION  # flagged label_issue, so it is in the queue
    if i % 6 == 0:
        return f"dog {i}"  # two words: too_short
    return f"a photo number {i} of a small {LABELS[i % 4]} on grass"


def luma(i: int) -> float:
    return 7.0 if i % 13 == 7 else float(40 + (i * 29) % 200)


def sharpness(i: int) -> float:
    return float((i * 53) % 200)


def _outputs() -> dict[str, StageOutputs]:
    C, S = ColumnSpec, ScoreSpec
    return {
        "00-text_quality": StageOutputs(
            columns=[C(name="n_words", type="int32", role="score"), C(name="non_letter_share", type="float")],
            scores=[S(column="n_words", flag="too_short", param="min_words", flags_when="below", label="words")]),
        "01-near_dup": StageOutputs(
            columns=[C(name="cluster_id", type="string", role="duplicate_group"),
                     C(name="is_representative", type="bool", role="representative"),
                     C(name="similarity", type="float", role="score")],
            scores=[S(column="similarity", flag="near_duplicate", param="threshold", flags_when="above",
                      label="similarity")]),
        "02-label_noise": StageOutputs(
            columns=[C(name="suggested_label", type="string", role="suggested_label"),
                     C(name="suggested_prob", type="float", role="label_confidence"),
                     C(name="label_quality", type="float", role="score")],
            scores=[S(column="label_quality", flag="label_issue", param="min_quality", flags_when="below",
                      label="label quality")]),
        "03-caption_repair": StageOutputs(
            columns=[C(name="caption", type="string", role="replacement_text")],
            edit_flags={"caption_repaired": "caption"}),
        "04-image_quality": StageOutputs(
            columns=[C(name="luma_mean", type="float", role="score"), C(name="sharpness", type="float", role="score")],
            scores=[S(column="luma_mean", flag="too_dark", param="dark_below", flags_when="below", label="mean luma"),
                    S(column="sharpness", flag="blurry", param="min_sharpness", flags_when="below", label="sharpness")]),
    }


PARAMS = {"00-text_quality": {"min_words": 3, "action": "review"}, "01-near_dup": {"threshold": 0.9, "action": "review"},
          "02-label_noise": {"min_quality": 0.5, "action": "review"}, "03-caption_repair": {"action": "review"},
          "04-image_quality": {"dark_below": 15.0, "min_sharpness": 30.0,
                               "action": {"too_dark": "drop", "default": "review"}}}


def make_review_run(root: Path, n: int = 120, shard_size: int = 50, images: list[bytes] | None = None,
                    all_flagged: bool = False) -> RunDir:
    """Write a finished run of ``n`` items to ``root``; ``images`` (cycled) replaces the generated PNGs.

    ``all_flagged``: ``00-text_quality`` flags every item (for the benchmark's 100,000 flagged items)."""
    run = RunDir(root)
    ids_all: list[str] = []
    n_shards = (n + shard_size - 1) // shard_size
    for s in range(n_shards):
        idx = list(range(s * shard_size, min(n, (s + 1) * shard_size)))
        recs = {k: [] for k in RECORD_SCHEMA.names}
        for i in idx:
            img = images[i % len(images)] if images else _png(i)
            text, label, source = _caption(i), LABELS[i % 4], f"item-{i:06d}.png"
            recs["id"].append(content_id(source, img, text, label))
            recs["source"].append(source)
            recs["image"].append(img)
            recs["text"].append(text)
            recs["label"].append(label)
            recs["width"].append(48)
            recs["height"].append(40)
            recs["meta"].append(None)
        ids_all.extend(recs["id"])
        ids = pa.array(recs["id"], pa.string())
        write_table(pa.Table.from_pydict(recs, schema=RECORD_SCHEMA), run.data_shard(s))

        def table(cols: dict, flags: list, actions: list, details: list) -> pa.Table:
            data = {"id": ids, **cols, "flag": pa.array(flags, pa.string()),
                    "action": pa.array(actions, pa.string()), "detail": pa.array(details, pa.string())}
            return pa.table(data)

        words = [len(_caption(i).split()) for i in idx]
        short = [all_flagged or w < 3 for w in words]
        write_table(table({"n_words": pa.array(words, pa.int32()),
                           "non_letter_share": pa.array([(i % 17) / 17 for i in idx], pa.float32())},
                          ["too_short" if f else None for f in short], ["review" if f else None for f in short],
                          [(f"{w} words, fewer than 3" if w < 3 else "flagged for the benchmark") if f else None
                           for w, f in zip(words, short)]),
                    run.stage_shard("00-text_quality", s))
        dup = [i % 10 == 1 for i in idx]
        write_table(table({"cluster_id": pa.array([f"c{i // 10}" if i % 10 in (0, 1) else None for i in idx], pa.string()),
                           "is_representative": pa.array([i % 10 == 0 for i in idx], pa.bool_()),
                           "similarity": pa.array([0.9 + (i % 10) / 100 if d else None for i, d in zip(idx, dup)], pa.float32())},
                          ["near_duplicate" if d else None for d in dup], ["review" if d else None for d in dup],
                          [f"near-duplicate of {ids_all[i - 1][:8]} (Jaccard 0.91)" if d else None for i, d in zip(idx, dup)]),
                    run.stage_shard("01-near_dup", s))
        lab = [i % 7 == 3 for i in idx]
        write_table(table({"suggested_label": pa.array([LABELS[(i + 1) % 4] if f else None for i, f in zip(idx, lab)], pa.string()),
                           "suggested_prob": pa.array([0.97 if f else None for f in lab], pa.float32()),
                           "label_quality": pa.array([(i % 100) / 100 for i in idx], pa.float32())},
                          ["label_issue" if f else None for f in lab], ["review" if f else None for f in lab],
                          [f"labelled {LABELS[i % 4]}, model says {LABELS[(i + 1) % 4]} (p=0.97)" if f else None
                           for i, f in zip(idx, lab)]),
                    run.stage_shard("02-label_noise", s))
        rep = [i % 11 == 5 for i in idx]
        write_table(table({"caption": pa.array([_caption(i).replace("photo", "picture") if f else _caption(i)
                                                for i, f in zip(idx, rep)], pa.string())},
                          ["caption_repaired" if f else None for f in rep], ["review" if f else None for f in rep],
                          ["caption repaired by rules: photo -> picture" if f else None for f in rep]),
                    run.stage_shard("03-caption_repair", s))
        flags = ["too_dark" if luma(i) < 15 else "blurry" if sharpness(i) < 30 else None for i in idx]
        write_table(table({"luma_mean": pa.array([luma(i) for i in idx], pa.float32()),
                           "sharpness": pa.array([sharpness(i) for i in idx], pa.float32())},
                          flags, [None if f is None else "drop" if f == "too_dark" else "review" for f in flags],
                          [None if f is None else f"mean luma {luma(i):g} < 15" if f == "too_dark"
                           else f"sharpness {sharpness(i):g} < 30" for i, f in zip(idx, flags)]),
                    run.stage_shard("04-image_quality", s))
    outputs = _outputs()
    manifest = Manifest(
        name="review-test", status="done", pipeline_file=None,
        config={"name": "review-test", "input": {"format": "parquet", "path": "x.parquet"}, "output": str(root),
                "stages": [{d.split("-", 1)[1]: PARAMS[d]} for d in DIRS]},
        input=InputEntry(format="parquet", path="x.parquet", status="done", fingerprint=f"synthetic-{n}",
                         shards=n_shards, rows=n),
        stages=[StageEntry(index=k, name=d.split("-", 1)[1], dir=d, fingerprint=f"fp{k}-{n}", status="done",
                           kind="global" if k in (1, 2) else "map", params=PARAMS[d], outputs=outputs[d],
                           finished="2026-01-01T00:00:00+00:00")
                for k, d in enumerate(DIRS)],
    )
    run.save_manifest(manifest)
    return run


def stage_flags(i: int) -> dict[str, str]:
    """Stage dir -> flag of item ``i`` (only the stages that flag it)."""
    out = {}
    if len(_caption(i).split()) < 3:
        out["00-text_quality"] = "too_short"
    if i % 10 == 1:
        out["01-near_dup"] = "near_duplicate"
    if i % 7 == 3:
        out["02-label_noise"] = "label_issue"
    if i % 11 == 5:
        out["03-caption_repair"] = "caption_repaired"
    if luma(i) < 15:
        out["04-image_quality"] = "too_dark"
    elif sharpness(i) < 30:
        out["04-image_quality"] = "blurry"
    return out


def expected_actions(n: int) -> dict[int, str]:
    """Final stage action per item index (only items with a flag that needs review or drops)."""
    out = {}
    for i in range(n):
        flags = stage_flags(i)
        if flags.get("04-image_quality") == "too_dark":
            out[i] = "drop"
        elif flags:
            out[i] = "review"
    return out


def item_ids(run: RunDir) -> list[str]:
    import pyarrow.parquet as pq

    return [i for p in run.data_shards() for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()]


__all__ = ["DIRS", "HTML_CAPTION", "LABELS", "act", "enabled", "expected_actions", "item_ids", "luma", "make_review_run",
           "sharpness", "side", "stage_flags", "ui_html"]


# -- the app's controls from AppTest -------------------------------------------------------------------
def _ui(at, key: str):
    """The app's control element ``key`` (one ``st.components.v2`` element: ``side``, ``items``, ``groups``)."""
    from streamlit.testing.v1.element_tree import UnknownElement

    for node in at._tree:
        if isinstance(node, UnknownElement) and node.type == "bidi_component" and node.key == key:
            return node
    raise AssertionError(f"no element {key!r} on the page")


def ui_html(at, key: str = "items") -> str:
    return json.loads(_ui(at, key).proto.json)["html"]


def act(at, name: str, arg=None, *, key: str = "items", **fields):
    """A click (or shortcut key) on the control ``name`` of element ``key``, sent as the browser sends it
    (one trigger with the element's input values), then the rerun. AppTest has no driver for custom
    components, so this builds the widget state itself."""
    from streamlit.components.v2.bidi_component.main import _make_trigger_id

    html = ui_html(at, key)
    want = f'data-act="{name}"' + ("" if arg is None else f' data-arg="{arg}"')
    tags = [t for t in re.findall(r"<(?:button|div)\b[^>]*>", html) if want in t]
    if not tags:  # a text field that sends its value, or a check box
        want = f'data-(?:send|toggle)="{name}"'
        tags = [t for t in re.findall(r"<input\b[^>]*>", html) if re.search(want, t)]
    assert tags, f"no control {want} in {key}"
    assert not any(re.search(r"\sdisabled\b", t) for t in tags), f"{want} is disabled"
    ws = at._tree.get_widget_states()
    w = ws.widgets.add()
    w.id = _make_trigger_id(_ui(at, key).proto.id, "events")
    w.json_trigger_value = json.dumps([{"event": "action", "value": {"act": name, "arg": arg, "fields": fields}}])
    return at._run(ws)


def side(at, name: str, arg=None):
    return act(at, name, arg, key="side")


def enabled(at, name: str, key: str = "items") -> bool:
    tag = re.search(rf'<button\b[^>]*data-act="{name}"[^>]*>', ui_html(at, key)).group(0)
    return not re.search(r"\sdisabled\b", tag)
