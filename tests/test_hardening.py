"""Hardening (issue 14): readers confined to the dataset root, strict YAML, the run-directory lock,
``curate review`` owning its server, input limits, unique ids, pipeline-relative paths.

The first test of each of the four faults found by trying the tool as a new user fails on the code
before the fix: symlink escape, duplicate YAML keys, two runs on one directory, orphaned Streamlit.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from curate.cli import main
from curate.config import InputConfig, load_pipeline
from curate.errors import ConfigError
from curate.runner import Runner
from tests.conftest import EXAMPLES, REPO, image_bytes, read_all

SECRET = b"root:x:0:0:SECRET-BYTES-OUTSIDE-THE-ROOT\n"


def reasons(q: pa.Table) -> dict:
    return dict(zip(q.column("source").to_pylist(), q.column("reason").to_pylist()))


def no_secret_in(paths) -> bool:
    return all(SECRET not in Path(p).read_bytes() for p in paths)


# -- 1. readers never read outside the dataset root ---------------------------------------------------
@pytest.fixture
def escape_tree(tmp_path):
    """An image folder with a file link and a directory link leaving the root, and a looping link."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(SECRET)
    (outside / "passwd").write_bytes(SECRET)
    root = tmp_path / "ds"
    (root / "cat").mkdir(parents=True)
    (root / "cat" / "ok.jpg").write_bytes(image_bytes(seed=1))
    (root / "cat" / "evil.jpg").symlink_to(outside / "passwd")
    (root / "cat" / "up").symlink_to(outside, target_is_directory=True)  # a folder link above the root
    (root / "cat" / "loop").symlink_to(root, target_is_directory=True)  # loops back to the root
    (root / "dog").mkdir()
    (root / "dog" / "inside.jpg").symlink_to(root / "cat" / "ok.jpg")  # a link that stays inside: fine
    return root


def test_symlink_escape_is_quarantined_without_bytes(escape_tree, tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump({"name": "esc", "input": {"format": "imagefolder", "path": str(escape_tree)},
                                 "output": str(tmp_path / "run"), "workers": 1, "stages": []}))
    Runner(load_pipeline(p), quiet=True).execute()
    qfiles = sorted((tmp_path / "run" / "quarantine").glob("*.parquet"))
    q = pa.concat_tables([pq.read_table(f) for f in qfiles])
    assert reasons(q) == {"cat/evil.jpg": "outside_root"}
    assert q.column("image").to_pylist() == [None]
    assert no_secret_in(qfiles + sorted((tmp_path / "run").rglob("*.parquet")))
    recs = pa.concat_tables([pq.read_table(f) for f in sorted((tmp_path / "run" / "data").glob("*.parquet"))])
    assert sorted(recs.column("source").to_pylist()) == ["cat/ok.jpg", "dog/inside.jpg"]  # not walked: up/, loop/


def test_directory_link_inside_root_is_walked_once(tmp_path):
    root = tmp_path / "ds"
    (root / "real").mkdir(parents=True)
    (root / "real" / "a.jpg").write_bytes(image_bytes(seed=2))
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    (root / "real" / "back").symlink_to(root / "real", target_is_directory=True)  # a loop inside the root
    recs, q = read_all({"format": "imagefolder", "path": str(root)})
    assert sorted(recs.column("source").to_pylist()) == ["alias/a.jpg", "real/a.jpg"]
    assert q.num_rows == 0


def test_captions_sidecar_link_outside_root(tmp_path):
    (tmp_path / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "caps"
    root.mkdir()
    (root / "a.jpg").write_bytes(image_bytes(seed=3))
    (root / "a.txt").symlink_to(tmp_path / "secret.txt")
    recs, q = read_all({"format": "captions", "path": str(root)})
    assert recs.num_rows == 0 and reasons(q) == {"a.jpg": "outside_root"}
    assert q.column("text").to_pylist() == [None] and q.column("image").to_pylist() == [None]


def test_manifest_path_through_a_link_outside_root(tmp_path):
    (tmp_path / "secret.jpg").write_bytes(SECRET)
    root = tmp_path / "m"
    root.mkdir()
    (root / "link").symlink_to(tmp_path, target_is_directory=True)
    (root / "x.jpg").write_bytes(image_bytes(seed=4))
    (root / "m.csv").write_text("file\nx.jpg\nlink/secret.jpg\n/etc/passwd\nsub/../x.jpg\n")
    recs, q = read_all({"format": "csv", "path": str(root / "m.csv"), "columns": {"image": "file"}})
    assert recs.column("source").to_pylist() == ["x.jpg"]
    assert sorted(q.column("reason").to_pylist()) == ["outside_root"] * 3
    assert all(v is None for v in q.column("image").to_pylist())


def test_zip_members_with_dotdot_or_absolute_names(tmp_path):
    z = tmp_path / "ds.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("cat/ok.jpg", image_bytes(seed=5))
        zf.writestr("../evil.jpg", image_bytes(seed=6))
        zf.writestr("/abs/evil.jpg", image_bytes(seed=7))
        zf.writestr("cat/../../x.jpg", image_bytes(seed=8))
    recs, q = read_all({"format": "imagefolder", "path": str(z)})
    assert recs.column("source").to_pylist() == ["cat/ok.jpg"]
    assert sorted(reasons(q).values()) == ["outside_root"] * 3
    assert all(v is None for v in q.column("image").to_pylist())


def test_tar_members_with_dotdot_or_absolute_names(tmp_path):
    t = tmp_path / "shard.tar"
    with tarfile.open(t, "w") as tf:
        for name, data in (("000.jpg", image_bytes(seed=9)), ("000.txt", b"fine"), ("../001.jpg", image_bytes(seed=10)),
                           ("../001.txt", b"escape"), ("/abs/002.txt", b"absolute")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    recs, q = read_all({"format": "webdataset", "path": str(t)})
    assert recs.column("source").to_pylist() == ["shard.tar:000"]
    assert sorted(reasons(q).values()) == ["outside_root", "outside_root"]


def test_quarantine_keeps_bytes_up_to_the_cap(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "small.jpg").write_bytes(b"not an image")
    (root / "big.jpg").write_bytes(b"not an image either" * 1000)
    recs, q = read_all({"format": "imagefolder", "path": str(root), "quarantine_max_bytes": 100})
    images = dict(zip(q.column("source").to_pylist(), q.column("image").to_pylist()))
    assert images == {"big.jpg": None, "small.jpg": b"not an image"}


# -- limits -----------------------------------------------------------------------------------------------
def test_limits_quarantine_with_the_limit_named(tmp_path):
    root = tmp_path / "caps"
    root.mkdir()
    (root / "big.jpg").write_bytes(image_bytes(200, 200, seed=1))
    (root / "wide.png").write_bytes(image_bytes(300, 10, fmt="PNG", seed=2))
    (root / "ok.jpg").write_bytes(image_bytes(20, 20, seed=3))
    (root / "long.jpg").write_bytes(image_bytes(20, 20, seed=4))
    (root / "long.txt").write_text("word " * 50)
    size_big = (root / "big.jpg").stat().st_size
    recs, q = read_all({"format": "captions", "path": str(root), "max_file_bytes": size_big - 1,
                        "max_image_pixels": 2000, "max_text_chars": 100})
    assert recs.column("source").to_pylist() == ["ok.jpg"]
    got = {s: (r, d) for s, r, d in zip(*(q.column(c).to_pylist() for c in ("source", "reason", "detail")))}
    assert got["big.jpg"][0] == "file_too_large" and "input.max_file_bytes" in got["big.jpg"][1]
    assert got["wide.png"][0] == "decompression_bomb" and "input.max_image_pixels" in got["wide.png"][1]
    assert got["long.jpg"][0] == "text_too_long" and "input.max_text_chars" in got["long.jpg"][1]


def test_manifest_line_limits(tmp_path):
    j = tmp_path / "m.jsonl"
    j.write_text(json.dumps({"text": "short one"}) + "\n" + json.dumps({"text": "x" * 5000}) + "\n"
                 + json.dumps({"text": "after"}) + "\n")
    recs, q = read_all({"format": "jsonl", "path": str(j), "max_line_bytes": 1000})
    assert recs.column("text").to_pylist() == ["short one", "after"]
    assert q.column("reason").to_pylist() == ["bad_row"] and "input.max_line_bytes" in q.column("detail")[0].as_py()
    c = tmp_path / "m.csv"
    c.write_text("text\nfine\n" + "y" * 5000 + "\nalso fine\n")
    recs, q = read_all({"format": "csv", "path": str(c), "max_line_bytes": 1000})
    assert recs.column("text").to_pylist() == ["fine", "also fine"]
    assert q.column("reason").to_pylist() == ["bad_row"]


def test_zip_bomb_member_stops_at_the_limit(tmp_path):
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/bomb.png", b"\x89PNG\r\n\x1a\n" + bytes(20_000_000))  # 20 MB of zeros, ~20 kB compressed
        zf.writestr("a/ok.jpg", image_bytes(seed=1))
    recs, q = read_all({"format": "imagefolder", "path": str(z), "max_file_bytes": 1_000_000})
    assert recs.num_rows == 1 and reasons(q) == {"a/bomb.png": "file_too_large"}


def test_limits_are_config_with_defaults():
    from curate.readers.limits import Limits

    cfg = InputConfig(format="coco", path="x")
    assert Limits.of(cfg) == Limits()
    assert cfg.max_image_pixels == 178_956_970 and cfg.max_file_bytes == 256 * 2**20


# -- 2. strict YAML ---------------------------------------------------------------------------------------
def test_duplicate_yaml_keys_fail_validate_and_run(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text(f"name: dup\ninput: {{format: coco, path: {EXAMPLES / 'coco'}}}\nexecutor: ray\n"
                 f"output: {tmp_path / 'run'}\nexecutor: local\nstages: []\n")
    for args in (["validate", str(p)], ["run", str(p), "-q"]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2, r.output
        assert "duplicate key 'executor'" in r.output and "line 5" in r.output and "line 3" in r.output
    assert not (tmp_path / "run").exists()


def test_duplicate_keys_nested_and_in_stage_params():
    from curate.config import load_yaml

    with pytest.raises(ConfigError) as e:
        load_yaml("name: a\nstages:\n  - text_quality: {min_words: 2, min_words: 3}\n", "p.yaml")
    assert "line 3" in str(e.value) and "stages[0].text_quality.min_words" in str(e.value)


def test_billion_laughs_and_non_string_keys_are_refused():
    from curate.config import load_yaml

    lol = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{k}: &{k} [{', '.join(['*' + p] * 10)}]\n" for p, k in zip("abcde", "bcdef"))
    with pytest.raises(ConfigError, match="aliases expand to"):
        load_yaml(lol, "lol.yaml")
    with pytest.raises(ConfigError, match=r"line 2: .*key '1' is not a string"):
        load_yaml("name: a\n1: b\n", "p.yaml")
    with pytest.raises(ConfigError, match="not a string"):
        load_yaml("? [a, b]\n: c\n", "p.yaml")
    # the YAML 1.1 words as keys are strings (exact_dedup's 'on:'), a small alias is fine, merges are fine
    assert load_yaml("on: [image]\nbase: &b {x: 1}\nuse: {<<: *b, y: 2}\n") == \
        {"on": ["image"], "base": {"x": 1}, "use": {"x": 1, "y": 2}}


def test_relative_paths_resolve_against_the_pipeline_folder(tmp_path, monkeypatch):
    pdir = tmp_path / "project" / "pipelines"
    pdir.mkdir(parents=True)
    (tmp_path / "project" / "data").symlink_to(EXAMPLES / "coco", target_is_directory=True)
    p = pdir / "demo.yaml"
    p.write_text("name: rel\ninput: {format: coco, path: ../data}\noutput: ../runs/rel\nstages: []\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    pl = load_pipeline(p)
    assert pl.config.input.path == str(tmp_path / "project" / "data")
    assert pl.config.output_dir() == tmp_path / "project" / "runs" / "rel"
    r = CliRunner().invoke(main, ["run", str(p), "-q"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "project" / "runs" / "rel" / "manifest.json").is_file()
    p.write_text("name: rel\ninput: {format: coco, path: missing}\nstages: []\n")
    r = CliRunner().invoke(main, ["run", str(p), "-q"])
    assert r.exit_code == 1 and "does not exist" in r.output and str(pdir / "missing") in r.output


# -- 3. the run-directory lock ------------------------------------------------------------------------
def _run_code(p: Path, out: Path) -> str:
    return ("import sys; sys.path.insert(0, %r); import tests.slow_stage; from curate.cli import main; "
            "main(['run', %r, '--output', %r, '--quiet'])") % (str(REPO), str(p), str(out))


@pytest.mark.slow
def test_second_run_on_the_same_directory_is_refused(make_pipeline, tmp_path):
    p = make_pipeline({"format": "coco", "path": str(EXAMPLES / "coco"), "shard_size": 4},
                      [{"slow_copy": {"seconds": 0}}], workers=1)
    out = tmp_path / "shared"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    gate = tmp_path / "gate"  # the first run finishes one shard, then holds until the gate opens
    gate.mkdir()
    first = subprocess.Popen([sys.executable, "-c", _run_code(p, out)], stdout=subprocess.PIPE,
                             env={**env, "SLOW_COPY_GATE": str(gate), "SLOW_COPY_FREE": "1"},
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        while not list((out / "stages" / "00-slow_copy").glob("part-*.parquet")):
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.05)
        second = subprocess.run([sys.executable, "-c", _run_code(p, out).replace("'--quiet'", "'--quiet', '--force'")],
                                env=env, capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first run should still be running"
        assert second.returncode == 1, second.stderr
        lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "Traceback" not in second.stderr, second.stderr
        assert f"pid {first.pid}" in lines[0] and "curate run" in lines[0] and "since" in lines[0]
        (gate / "open").touch()
        _, err = first.communicate(timeout=180)
        assert first.returncode == 0, err
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    n_shards = len(list((out / "data").glob("part-*.parquet")))
    assert len(list((out / "stages" / "00-slow_copy").glob("part-*.parquet"))) == n_shards
    assert not (out / ".curate.lock").exists()
    third = subprocess.run([sys.executable, "-c", _run_code(p, out)], env=env, capture_output=True, text=True)
    assert third.returncode == 0, third.stderr


def test_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    from curate.runlock import LOCK_NAME, RunLock, lock_holder

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                                 "command": "curate run", "since": "2026-01-01T00:00:00+00:00"}))
    assert lock_holder(run_dir) is None  # nobody holds it: the file is stale
    with caplog.at_level("WARNING"), RunLock(run_dir, "curate export") as lock:
        assert lock.took_over["pid"] == dead.pid
        assert lock_holder(run_dir)["command"] == "curate export"
    assert "taking over a stale lock" in caplog.text and f"pid {dead.pid}" in caplog.text
    assert not (run_dir / LOCK_NAME).exists()


def test_export_waits_for_no_one_but_refuses_while_a_run_holds_the_lock(tmp_path):
    from curate.runlock import RunLock, RunLocked

    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump({"name": "lk", "input": {"format": "coco", "path": str(EXAMPLES / "coco")},
                                 "output": str(tmp_path / "run"), "workers": 1, "stages": []}))
    Runner(load_pipeline(p), quiet=True).execute()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from curate.runlock import RunLock; "
                               f"RunLock({str(tmp_path / 'run')!r}, 'curate run').acquire(); print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        r = CliRunner().invoke(main, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "out"), "-q"])
        assert r.exit_code == 1 and f"in use by curate run (pid {holder.pid}" in r.output
        with pytest.raises(RunLocked):
            RunLock(tmp_path / "run", "test").acquire()
        with pytest.raises(RunLocked):
            Runner(load_pipeline(p), quiet=True).execute()
    finally:
        holder.kill()
        holder.wait()
    r = CliRunner().invoke(main, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "out"), "-q"])
    assert r.exit_code == 0, r.output


# -- 4. curate review owns its server --------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def review_run(tmp_path_factory):
    pytest.importorskip("streamlit", reason="needs the 'app' extra (streamlit)")
    tmp = tmp_path_factory.mktemp("review")
    p = tmp / "p.yaml"
    p.write_text(yaml.safe_dump({"name": "rv", "input": {"format": "coco", "path": str(EXAMPLES / "coco")},
                                 "output": str(tmp / "run"), "workers": 1,
                                 "stages": [{"text_quality": {"min_words": 8, "action": "review"}}]}))
    Runner(load_pipeline(p), quiet=True).execute()
    return tmp / "run"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name)
def test_review_server_does_not_outlive_curate_review(review_run, tmp_path, sig):
    psutil = pytest.importorskip("psutil")
    port = _free_port()
    log = tmp_path / "review.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "curate", "review", str(review_run), "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    children = []
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.time() < deadline, log.read_text(errors="replace")
            time.sleep(0.3)
        children = psutil.Process(proc.pid).children(recursive=True)
        assert children, "the server should be a child process"
        proc.send_signal(sig)  # the parent only, as a process manager or a closing terminal does
        proc.wait(timeout=60)
        gone, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, f"the review server outlived 'curate review' ({sig.name}): {alive}"
        assert not _port_open(port)
        if sig != signal.SIGKILL:
            assert proc.returncode == (0 if sig == signal.SIGINT else 128 + sig)
            assert "stopped the review server" in log.read_text()
    finally:
        for c in children:
            try:
                c.kill()
            except psutil.NoSuchProcess:
                pass
        if proc.poll() is None:
            proc.kill()


# -- unique ids ------------------------------------------------------------------------------------------
def _ids_run(tmp_path: Path, shard_size: int, name: str) -> tuple[list, dict]:
    c = tmp_path / "files.csv"
    if not c.exists():
        rows = ["name,text", "a,t0", "b,t1", "a,t0", "c,t2", "a,t0", "b,t1", "d,other"]
        c.write_text("\n".join(rows) + "\n")
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump({"name": name, "input": {"format": "csv", "path": str(c), "shard_size": shard_size,
                                                         "columns": {"source": "name", "text": "text"}},
                                 "output": str(tmp_path / name), "workers": 1, "stages": []}))
    Runner(load_pipeline(p), quiet=True).execute()
    recs = pa.concat_tables([pq.read_table(f) for f in sorted((tmp_path / name / "data").glob("*.parquet"))])
    return recs.column("id").to_pylist(), json.loads((tmp_path / name / "manifest.json").read_text())["input"]


def test_repeated_sources_get_unique_ids_stable_across_shard_sizes(tmp_path):
    ids1, inp1 = _ids_run(tmp_path, 2, "small")
    ids2, inp2 = _ids_run(tmp_path, 100, "large")
    assert len(set(ids1)) == len(ids1) == 7
    assert ids1 == ids2
    assert inp1["repeated_ids"] == inp2["repeated_ids"] == 3
    assert ids1[2:7] == [ids1[0] + "-2", ids1[3], ids1[0] + "-3", ids1[1] + "-2", ids1[6]]
    r = CliRunner().invoke(main, ["status", str(tmp_path / "small")])
    assert r.exit_code == 0 and "repeated source and content (ids numbered <id>-2, ...): 3" in r.output


# -- caption rules: boilerplate extend vs replace, repeated phrases and punctuation ------------------------
def test_boilerplate_list_extends_or_replaces_the_defaults():
    from curate.captions.rules import DEFAULT_BOILERPLATE, boilerplate_phrases
    from curate.stages.caption_repair import CaptionRepairParams

    assert boilerplate_phrases(["courtesy of"]) == (*DEFAULT_BOILERPLATE, "courtesy of")
    assert boilerplate_phrases(["courtesy of"], "replace") == ("courtesy of",)
    with pytest.raises(ValueError, match="extend, replace"):
        boilerplate_phrases([], "merge")
    p = CaptionRepairParams(boilerplate=["courtesy of"])
    assert p.boilerplate_mode == "extend"
    from curate.captions.rules import RuleSet

    ext = RuleSet(["boilerplate"], boilerplate=boilerplate_phrases(p.boilerplate, p.boilerplate_mode))
    rep = RuleSet(["boilerplate"], boilerplate=boilerplate_phrases(p.boilerplate, "replace"))
    assert ext.apply("Stock photo: a dog, courtesy of Bob").text == "a dog, Bob"
    assert rep.apply("Stock photo: a dog").text == "Stock photo: a dog"


@pytest.mark.parametrize("bad, good", [
    ("a dog on the table on the table.", "a dog on the table."),
    ("jets parked next jets parked next to each other", "jets parked next to each other"),
    ("A big,, white bird", "A big, white bird"),
    ("A big, , white bird", "A big, white bird"),
    ("What a dog!!!", "What a dog!"),
    ("A dog....", "A dog."),
])
def test_repeats_rule_phrases_and_punctuation(bad, good):
    from curate.captions.rules import RuleSet

    assert RuleSet(["repeats"]).apply(bad).text == good


@pytest.mark.parametrize("text", ["a cup full of tea..", "very very big", "side by side", "so so good", "a a"])
def test_repeats_rule_leaves_these_alone(text):
    from curate.captions.rules import RuleSet

    if text == "a a":
        assert RuleSet(["repeats"]).apply("on a a road").text == "on a road"
        return
    assert RuleSet(["repeats"]).apply(text).text == text


@pytest.mark.slow
def test_imdb_file_list_repeats_get_unique_ids(shared_data, tmp_path):
    """The IMDB test file list in ../shared/data repeats 201 names with identical texts (issue 14)."""
    import gzip

    src = shared_data / "imdb-test" / "imdb_test.jsonl.gz"
    if not src.is_file():
        pytest.skip(f"{src} not found")
    (tmp_path / "imdb.jsonl").write_bytes(gzip.decompress(src.read_bytes()))
    p = tmp_path / "p.yaml"
    p.write_text("name: imdb\ninput: {format: jsonl, path: imdb.jsonl, shard_size: 5000,\n"
                 "        columns: {source: file, text: text, label: label}}\noutput: run\nstages: []\n")
    m = Runner(load_pipeline(p), quiet=True).execute()
    assert (m.input.rows, m.input.repeated_ids) == (25_000, 201)
    ids = [i for f in sorted((tmp_path / "run" / "data").glob("*.parquet")) for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()]
    assert len(set(ids)) == 25_000


def test_saved_threshold_pipeline_keeps_paths_and_keys_valid(tmp_path):
    """The review app's 'Save as pipeline' copy lives in the run: relative paths made absolute, 'on:' kept."""
    from curate.review.thresholds import save_pipeline
    from curate.rundir import RunDir

    (tmp_path / "data").symlink_to(EXAMPLES / "coco", target_is_directory=True)
    p = tmp_path / "p.yaml"
    p.write_text("name: thr\ninput: {format: coco, path: data}\noutput: run\n"
                 "stages:\n  - text_quality: {min_words: 2, action: review}\n  - exact_dedup: {on: [image]}\n")
    Runner(load_pipeline(p), quiet=True).execute()
    out = save_pipeline(RunDir(tmp_path / "run"), 0, "text_quality", "min_words", 3)
    copy = load_pipeline(out)
    assert copy.config.input.path == str(tmp_path / "data") and copy.config.output_dir() == tmp_path / "run"
    assert copy.stages[0].params.min_words == 3 and copy.stages[1].name == "exact_dedup"


def test_lock_without_flock_falls_back_to_pid_liveness(tmp_path, monkeypatch, caplog):
    from curate.runlock import LOCK_NAME, RunLock, RunLocked

    monkeypatch.setattr(RunLock, "_flock", staticmethod(lambda fd: None))  # a filesystem without flock
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (run_dir / LOCK_NAME).write_text(json.dumps({"pid": live.pid, "host": socket.gethostname(), "command": "curate run"}))
        with pytest.raises(RunLocked, match=f"pid {live.pid}"):
            RunLock(run_dir, "test").acquire()
    finally:
        live.kill()
        live.wait()
    with caplog.at_level("WARNING"), RunLock(run_dir, "test") as lock:  # now its holder is dead
        assert lock.took_over["pid"] == live.pid
        with pytest.raises(RunLocked):
            RunLock(run_dir, "second").acquire()
    assert "taking over a stale lock" in caplog.text and not (run_dir / LOCK_NAME).exists()
    (run_dir / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "another-host", "command": "curate run"}))
    with pytest.raises(RunLocked, match="another-host"):  # another host: cannot tell, refuse
        RunLock(run_dir, "test").acquire()


def test_a_named_pipe_in_the_folder_does_not_hang_the_ingest(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "ok.jpg").write_bytes(image_bytes(seed=1))
    os.mkfifo(root / "pipe.jpg")
    recs, q = read_all({"format": "imagefolder", "path": str(root)})
    assert recs.column("source").to_pylist() == ["ok.jpg"] and reasons(q) == {"pipe.jpg": "unreadable_file"}
