"""Property-based tests (hypothesis) of the readers, the config loader, ids and the caption rules.

Invariants: never a traceback (only CurateError subclasses for unusable inputs); every input item is
either ingested or quarantined with a reason, and the counts add up; ids are stable across runs and
shard sizes and unique within a run; a caption no rule fires on comes back byte-identical.

Run time is bounded by the hypothesis profile: ``ci`` (the default, 40 examples per test) or ``thorough``
(``HYPOTHESIS_PROFILE=thorough pytest tests/test_properties.py``, 1,000 examples).
"""

from __future__ import annotations

import json
import os
import string
import tempfile
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis", reason="needs the 'dev' extra (hypothesis)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from curate.captions.rules import RuleSet  # noqa: E402
from curate.config import load_yaml, parse_pipeline  # noqa: E402
from curate.errors import CurateError  # noqa: E402

from curate.readers.ids import numbered_ids  # noqa: E402
from tests.conftest import image_bytes, read_all  # noqa: E402

settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

JPEG = image_bytes(16, 12, seed=0)
PNG = image_bytes(16, 12, fmt="PNG", seed=1)

#: Image bytes: random, a valid image, or a valid image cut short or with bytes flipped.
image_data = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([JPEG, PNG]),
    st.tuples(st.sampled_from([JPEG, PNG]), st.integers(0, 400)).map(lambda t: t[0][: t[1]]),
    st.tuples(st.sampled_from([JPEG, PNG]), st.integers(0, 30), st.binary(min_size=1, max_size=8)).map(
        lambda t: t[0][: t[1]] + t[2] + t[0][t[1] + len(t[2]):]),
)
#: Text with control characters, surrogate-free Unicode, NULs and odd spaces.
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
#: Sidecar bytes: any bytes (often not UTF-8) or encoded text.
sidecar = st.one_of(st.binary(max_size=80), any_text.map(lambda s: s.encode("utf-8")))
names = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=8)


def check_accounted(recs: pa.Table, q: pa.Table, expected_sources: list[str]) -> None:
    """Every input item is exactly once in the records or the quarantine (with a reason)."""
    assert sorted(recs.column("source").to_pylist() + q.column("source").to_pylist()) == sorted(expected_sources)
    assert all(isinstance(r, str) and r for r in q.column("reason").to_pylist())
    assert len(set(recs.column("id").to_pylist())) == recs.num_rows


@given(files=st.dictionaries(names, st.tuples(image_data, st.one_of(st.none(), sidecar)), min_size=1, max_size=8),
       shard_size=st.integers(1, 5))
def test_captions_folder_of_random_bytes(files, shard_size):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for stem, (img, txt) in files.items():
            (root / f"{stem}.jpg").write_bytes(img)
            if txt is not None:
                (root / f"{stem}.txt").write_bytes(txt)
        recs, q = read_all({"format": "captions", "path": tmp, "shard_size": shard_size})
        check_accounted(recs, q, [f"{s}.jpg" for s in files])
        again, _ = read_all({"format": "captions", "path": tmp, "shard_size": 100})
        assert dict(zip(recs.column("source").to_pylist(), recs.column("id").to_pylist())) == \
            dict(zip(again.column("source").to_pylist(), again.column("id").to_pylist()))


json_value = st.recursive(st.none() | st.booleans() | st.integers() | any_text,
                          lambda c: st.lists(c, max_size=3) | st.dictionaries(any_text, c, max_size=3), max_leaves=8)


@given(lines=st.lists(st.one_of(
    st.fixed_dictionaries({"text": any_text}, optional={"label": json_value, "extra": json_value}).map(json.dumps),
    json_value.map(json.dumps),
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" ").decode("latin-1")),
), min_size=1, max_size=12), shard_size=st.integers(1, 4))
def test_jsonl_manifest_of_random_lines(lines, shard_size):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.jsonl"
        path.write_bytes(("\n".join(lines) + "\n").encode("utf-8", "surrogatepass"))
        try:
            recs, q = read_all({"format": "jsonl", "path": str(path), "shard_size": shard_size})
        except CurateError:
            return  # e.g. no JSON object at all: a clear error, not a traceback
        # blank lines are skipped; "blank" as bytes see it (b"\x1c".strip() keeps it, str.strip() does not)
        expected = [f"m.jsonl:line{i + 1}" for i, ln in enumerate(lines) if ln.encode("utf-8", "surrogatepass").strip()]
        check_accounted(recs, q, expected)


@given(rows=st.lists(st.tuples(any_text, any_text), min_size=1, max_size=10))
def test_csv_manifest_of_random_text(rows):
    import csv

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.csv"
        with open(path, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows(rows)
        recs, q = read_all({"format": "csv", "path": str(path)})
        assert recs.num_rows + q.num_rows <= len(rows)  # blank rows are skipped, as csv does
        assert len(set(recs.column("id").to_pylist())) == recs.num_rows


@given(members=st.lists(st.tuples(st.sampled_from(["a", "b", "../c", "/d", "e/../f", "g\\..\\h"]),
                                  st.sampled_from(["jpg", "txt", "cls", "json"]), st.binary(max_size=60)),
                        min_size=1, max_size=8))
def test_webdataset_tar_of_random_members(members):
    import io
    import tarfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.tar"
        with tarfile.open(path, "w") as tf:
            for key, ext, data in members:
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        recs, q = read_all({"format": "webdataset", "path": str(path)})
        for s, r in zip(q.column("source").to_pylist(), q.column("reason").to_pylist()):
            if ".." in s.split(":", 1)[1].replace("\\", "/").split("/") or s.split(":", 1)[1].startswith("/"):
                assert r == "outside_root"
        assert all(".." not in s.split(":", 1)[1].split("/") for s in recs.column("source").to_pylist())


@given(data=st.binary(max_size=300))
def test_random_bytes_as_a_tar_or_zip(data):
    with tempfile.TemporaryDirectory() as tmp:
        for name, fmt in (("s.tar", "webdataset"), ("d.zip", "imagefolder")):
            path = Path(tmp) / name
            path.write_bytes(data)
            try:
                recs, q = read_all({"format": fmt, "path": str(path)})
            except CurateError:
                continue
            assert recs.num_rows + q.num_rows >= 0


# -- ids --------------------------------------------------------------------------------------------------
@given(ids=st.lists(st.sampled_from(["aa", "bb", "cc", "dd"]), max_size=30), cut=st.integers(0, 30))
def test_numbered_ids_unique_idempotent_and_chunking_free(ids, cut):
    out, n = numbered_ids(pa.array(ids, pa.string()))
    out = out.to_pylist()
    assert len(set(out)) == len(out) and n == len(ids) - len(set(ids))
    assert [o for o, i in zip(out, ids) if o == i] == [i for k, i in enumerate(ids) if i not in ids[:k]]
    assert numbered_ids(pa.array(out, pa.string()))[0].to_pylist() == out  # running it again changes nothing
    # a crash after numbering only a prefix: the rerun gives the same ids
    partial = out[:cut] + ids[cut:]
    assert numbered_ids(pa.array(partial, pa.string()))[0].to_pylist() == out


# -- the config loader ----------------------------------------------------------------------------------
yaml_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.one_of(any_text, st.integers()), c, max_size=4),
    max_leaves=12)


@given(doc=yaml_value)
def test_yaml_structures_load_or_fail_clearly(doc):
    text = yaml.safe_dump(doc, allow_unicode=True)
    try:
        data = load_yaml(text, "p.yaml")
    except CurateError as exc:
        assert "p.yaml" in str(exc)
        return
    assert data == yaml.safe_load(text)
    try:
        parse_pipeline(data)
    except CurateError:
        pass


@given(text=st.text(st.sampled_from(list("ab:- \n[]{}&*!|>'\"#%@`,?") + ["\t", "\x00", "\u00e9"]), max_size=80))
def test_random_yaml_text_never_a_traceback(text):
    try:
        load_yaml(text, "p.yaml")
    except CurateError:
        pass


@given(stage=st.sampled_from(["text_quality", "image_quality", "caption_repair", "exact_dedup", "nope"]),
       params=st.dictionaries(st.sampled_from(["min_words", "action", "on", "rules", "x", "min_side"]), yaml_value,
                              max_size=3))
def test_random_pipelines_validate_or_fail_with_config_errors(stage, params):
    doc = {"name": "p", "input": {"format": "coco", "path": "x"}, "stages": [{stage: params}]}
    try:
        parse_pipeline(load_yaml(yaml.safe_dump(doc, allow_unicode=True), "p.yaml"))
    except CurateError:
        pass


# -- caption rules ----------------------------------------------------------------------------------------
RULES = RuleSet()


@given(text=st.one_of(any_text, st.text(string.printable, max_size=80),
                      st.lists(st.sampled_from(list("ab .,!?&;<>\"'") + ["the", " the", "http://", "&amp;", "\u00e2\u20ac",
                                                                               "\u201c", "IMG_1234.JPG", "..."]),
                               max_size=30).map("".join)))
def test_a_caption_no_rule_fires_on_comes_back_byte_identical(text):
    res = RULES.apply(text)
    assert isinstance(res.text, str)
    if not res.applied:
        assert res.text == text
    else:
        assert res.text != text
