"""Run directories, inputs and exports on object storage, against a real S3-compatible server.

The server is moto's (``moto[server]`` from PyPI: a Flask app speaking the S3 REST API), started on
127.0.0.1 with a free port by the ``s3`` fixture; curate talks to it through pyarrow's
``S3FileSystem`` over HTTP exactly as it would to AWS, configured by the standard ``AWS_*``
environment variables. Nothing is mocked inside the client.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pyarrow as pa
import pytest

from curate import storage
from curate.rundir import RunDir
from curate.shards import read_stage
from tests.conftest import EXAMPLES, REPO

BUCKET = "curate-test"
COCO = {"format": "coco", "path": str(EXAMPLES / "coco"), "shard_size": 4}


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on loopback and the environment that points pyarrow at it."""
    server_mod = pytest.importorskip("moto.server", reason="moto[server] is needed for the object-storage tests")
    import pyarrow.fs as pafs

    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{host}:{port}",
           "AWS_EC2_METADATA_DISABLED": "true"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    storage._FILESYSTEMS.clear()
    pafs.S3FileSystem(endpoint_override=env["AWS_ENDPOINT_URL"], region="us-east-1",
                      allow_bucket_creation=True).create_dir(BUCKET)
    try:
        yield env
    finally:
        storage._FILESYSTEMS.clear()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


def _all_keys(prefix: str) -> list[str]:
    import pyarrow.fs as pafs

    loc = storage.location(f"s3://{BUCKET}/{prefix}")
    infos = loc.fs.get_file_info(pafs.FileSelector(loc.path, recursive=True, allow_not_found=True))
    return sorted(i.path for i in infos if i.type == pafs.FileType.File)


def test_remote_paths_behave_like_local_ones(s3):
    root = storage.location(f"s3://{BUCKET}/basics")
    assert isinstance(root, storage.RemotePath) and str(root) == f"s3://{BUCKET}/basics"
    assert storage.location("runs/x") == storage.location("file://runs/x")  # local paths stay pathlib
    f = root / "sub" / "a.json"
    assert f.name == "a.json" and f.suffix == ".json" and f.parent == root / "sub"
    assert not f.exists() and not (root / "sub").is_dir()
    storage.write_json({"x": 1}, f)
    storage.write_table(pa.table({"v": [1, 2, 3]}), root / "sub" / "part-00000.parquet")
    assert f.is_file() and (root / "sub").is_dir() and f.read_text().strip() == '{\n  "x": 1\n}'
    assert [p.name for p in (root / "sub").glob("part-*.parquet")] == ["part-00000.parquet"]
    assert storage.read_table(root / "sub" / "part-00000.parquet").column("v").to_pylist() == [1, 2, 3]
    assert storage.parquet_file(root / "sub" / "part-00000.parquet").metadata.num_rows == 3
    storage.rmtree(root)
    assert not f.exists() and _all_keys("basics") == []


def test_a_failed_write_leaves_no_object_and_no_temporary_key(s3):
    final = storage.location(f"s3://{BUCKET}/atomic/part-00000.parquet")
    with pytest.raises(RuntimeError):
        with storage.atomic_path(final) as tmp:
            storage.write_bytes(final.parent / "other.bin", b"unrelated")
            fs, path = storage.arrow_source(tmp)
            with fs.open_output_stream(path) as out:
                out.write(b"half a shard")
            raise RuntimeError("killed mid-write")
    assert not final.exists()
    assert _all_keys("atomic") == [f"{BUCKET}/atomic/other.bin"]
    # a temporary key left by a writer that died (no cleanup ran) is not listed as a shard
    fs, path = storage.arrow_source(final.parent / ".part-00001.parquet.dead.tmp")
    with fs.open_output_stream(path) as out:
        out.write(b"partial")
    assert [p.name for p in final.parent.glob("part-*.parquet")] == []


def _run(pipeline, output, env, *extra, check=True):
    code = ("import sys; sys.path.insert(0, %r); import tests.slow_stage; from curate.cli import main; "
            "main(['run', %r, '--output', %r, '--quiet', *%r])") % (str(REPO), str(pipeline), str(output), list(extra))
    run_env = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", code], start_new_session=True, env=run_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_run_directory_on_s3_resumes_after_sigkill_and_equals_a_local_run(s3, make_pipeline, tmp_path):
    stages = [{"text_quality": {}}, {"slow_copy": {"seconds": 0}}, {"exact_dedup": {"on": ["text"]}},
              {"minhash_dedup": {"field": "text", "threshold": 0.5, "ngram": 2}}]
    pipeline = make_pipeline(COCO, stages, workers=2)
    remote = f"s3://{BUCKET}/runs/coco"
    gate = tmp_path / "gate"  # two shards of slow_copy finish, the rest wait for the kill (tests/slow_stage.py)
    gate.mkdir()
    proc = _run(pipeline, remote, {**s3, "SLOW_COPY_GATE": str(gate), "SLOW_COPY_FREE": "2"})
    slow = storage.location(remote) / "stages" / "01-slow_copy"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(slow.glob("part-*.parquet"))) < 2:
        assert proc.poll() is None, f"curate run exited before it could be killed: {proc.stderr.read().decode()}"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run = RunDir(remote)
    n_shards = len(run.data_shards())
    done_before = {p.name for p in slow.glob("part-*.parquet")}
    assert len(done_before) == 2 < n_shards, "the kill should land mid-stage"
    assert not run.manifest().finished
    resumed = _run(pipeline, remote, s3)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read().decode()
    local = tmp_path / "local"
    ref = _run(pipeline, local, s3)
    assert ref.wait(timeout=300) == 0, ref.stderr.read().decode()
    assert run.manifest().finished
    assert [s.dir for s in run.finished_stages()] == [s.dir for s in RunDir(local).finished_stages()]
    for s in RunDir(local).finished_stages():
        assert read_stage(run, s.dir).equals(read_stage(RunDir(local), s.dir)), s.dir
    assert not [k for k in _all_keys("runs/coco") if k.endswith(".tmp")]


def test_input_run_directory_and_export_all_on_s3(s3, make_pipeline, tmp_path):
    from curate.config import load_pipeline
    from curate.export import export_run
    from curate.fate import summarize_fates
    from curate.runner import Runner

    texts = [f"caption number {i % 40} of a small test set" + (" again" if i % 7 == 0 else "") for i in range(120)]
    table = pa.table({"text": texts, "label": [str(i % 3) for i in range(120)]})
    storage.write_table(table, f"s3://{BUCKET}/inputs/captions.parquet")
    local_input = tmp_path / "captions.parquet"
    storage.write_table(table, local_input)
    stages = [{"text_quality": {}}, {"exact_dedup": {"on": ["text"]}}]
    runs = {}
    for where, path, out in (("s3", f"s3://{BUCKET}/inputs/captions.parquet", f"s3://{BUCKET}/runs/captions"),
                             ("local", str(local_input), str(tmp_path / "run-local"))):
        cfg = {"format": "parquet", "path": path, "shard_size": 50}
        Runner(load_pipeline(make_pipeline(cfg, stages, workers=1)), output=out, quiet=True).execute()
        runs[where] = RunDir(out)
    assert runs["s3"].manifest().input.rows == 120 and len(runs["s3"].data_shards()) == 3
    for s in runs["local"].finished_stages():
        assert read_stage(runs["s3"], s.dir).equals(read_stage(runs["local"], s.dir))
    assert summarize_fates(runs["s3"]) == summarize_fates(runs["local"])
    from click.testing import CliRunner

    from curate.cli import main

    status = CliRunner().invoke(main, ["status", f"s3://{BUCKET}/runs/captions", "--json"])
    assert status.exit_code == 0, status.output
    export_run(f"s3://{BUCKET}/runs/captions", f"s3://{BUCKET}/exports/captions", fmt="parquet", quiet=True)
    export_run(str(tmp_path / "run-local"), tmp_path / "export-local", fmt="parquet", quiet=True)
    remote = storage.location(f"s3://{BUCKET}/exports/captions")
    names = sorted(p.name for p in remote.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "export-local").iterdir())
    for name in names:
        if name.endswith(".parquet"):
            assert storage.read_table(remote / name).equals(storage.read_table(tmp_path / "export-local" / name))
    with pytest.raises(Exception, match="only --format parquet"):
        export_run(f"s3://{BUCKET}/runs/captions", f"s3://{BUCKET}/exports/wds", fmt="webdataset", quiet=True)


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_jsonl_and_csv_inputs_on_s3_equal_local_ones(s3, tmp_path, fmt):
    """A manifest on S3 is planned and read through the same readers (byte ranges for JSONL) as a local one."""
    import json

    from curate.config import InputConfig
    from curate.readers import make_reader

    rows = [{"text": f"document {i} \u00e9 \"quoted\", with a comma" if i % 9 else "", "label": str(i % 4)}
            for i in range(130)]
    if fmt == "jsonl":
        data = "\n".join(json.dumps(r) if i != 77 else "{broken" for i, r in enumerate(rows)).encode()
    else:
        quoted = ['"' + r["text"].replace('"', '""') + '"' for r in rows]
        data = ("text,label\n" + "".join(f"{q},{r['label']}\n" for q, r in zip(quoted, rows))).encode()
    storage.write_bytes(f"s3://{BUCKET}/inputs/m.{fmt}", data)
    (tmp_path / f"m.{fmt}").write_bytes(data)
    shards = {}
    for where, path in (("s3", f"s3://{BUCKET}/inputs/m.{fmt}"), ("local", str(tmp_path / f"m.{fmt}"))):
        reader = make_reader(InputConfig(format=fmt, path=path, shard_size=50))
        shards[where] = [reader.build(t) for t in reader.tasks()]
    assert len(shards["s3"]) == 3
    for remote, local in zip(shards["s3"], shards["local"], strict=True):
        assert remote.records.equals(local.records) and remote.quarantine.equals(local.quarantine)
    assert sum(s.records.num_rows for s in shards["s3"]) == 130 - (fmt == "jsonl")
