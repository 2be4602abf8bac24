"""The CLI end to end on the demo pipeline, and every export format."""

import json
import tarfile

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from curate.cli import main
from curate.config import load_yaml
from tests.conftest import EXAMPLES, REPO


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """The shipped demo pipeline, run once into a temporary run directory."""
    tmp = tmp_path_factory.mktemp("demo")
    doc = load_yaml((REPO / "pipelines" / "demo.yaml").read_text())  # "on:" is a key, as curate reads it
    doc["input"]["path"] = str(EXAMPLES / "coco")
    doc["output"] = str(tmp / "run")
    p = tmp / "demo.yaml"
    p.write_text(yaml.safe_dump(doc))
    r = CliRunner().invoke(main, ["run", str(p), "--quiet"])
    assert r.exit_code == 0, r.output
    return tmp / "run", p, r.output


def test_run_prints_table_and_second_run_is_up_to_date(demo_run):
    run_dir, p, output = demo_run
    assert "ingest" in output and "rows/s" in output and "quarantined (truncated_image: 1)" in output
    r = CliRunner().invoke(main, ["run", str(p), "--quiet"])
    assert r.exit_code == 0
    n_stages = len(yaml.safe_load(p.read_text())["stages"])
    assert r.output.count("up to date") == n_stages + 1  # ingest and every stage
    assert " ran " not in r.output


def test_status_counts(demo_run):
    run_dir, _, _ = demo_run
    r = CliRunner().invoke(main, ["status", str(run_dir)])
    assert r.exit_code == 0
    assert "quarantined truncated_image: 1" in r.output and "too_dark" in r.output
    r = CliRunner().invoke(main, ["status", str(run_dir), "--json"])
    data = json.loads(r.output)
    o = data["outcome"]
    assert o["items"] == o["keep"] + o["review"] + o["drop"] == data["input"]["rows"]


def test_status_of_non_run_is_one_clear_line(tmp_path):
    r = CliRunner().invoke(main, ["status", str(tmp_path)])
    assert r.exit_code == 1 and "not a run directory" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "imagefolder", "webdataset"])
def test_export_formats(demo_run, tmp_path, fmt):
    run_dir, _, _ = demo_run
    out = tmp_path / fmt
    r = CliRunner().invoke(main, ["export", str(run_dir), "--format", fmt, "--out", str(out), "--pending", "keep", "-q"])
    assert r.exit_code == 0, r.output
    em = json.loads((out / "export_manifest.json").read_text())
    c = em["counts"]
    assert c["in"] == c["kept"] + c["dropped"] and c["kept"] > 40
    if fmt == "parquet":
        t = pq.read_table(sorted(out.glob("part-*.parquet")))
        assert t.num_rows == c["kept"] and "image" in t.column_names
    elif fmt == "jsonl":
        rows = [json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()]
        assert len(rows) == c["kept"] and all((out / r["image"]).is_file() for r in rows)
        assert isinstance(rows[0]["meta"], dict)
    elif fmt == "imagefolder":
        assert len(list(out.rglob("*.jpg"))) == c["kept"]
    else:
        names = [m for tar in out.glob("*.tar") for m in tarfile.open(tar).getnames()]
        assert sum(n.endswith(".jpg") for n in names) == c["kept"]
        assert sum(n.endswith(".txt") for n in names) == c["kept"]


def test_export_pending_drop_leaves_out_review_items(demo_run, tmp_path):
    run_dir, _, _ = demo_run
    keep = json.loads(CliRunner().invoke(main, ["status", str(run_dir), "--json"]).output)["outcome"]
    r = CliRunner().invoke(main, ["export", str(run_dir), "--out", str(tmp_path / "o"), "--pending", "drop", "-q"])
    assert r.exit_code == 0
    em = json.loads((tmp_path / "o" / "export_manifest.json").read_text())
    # status and export call the same fate rule; caption repairs awaiting review do not drop their items
    assert em["counts"]["kept"] == keep["kept"] > keep["keep"]
    assert em["counts"]["dropped"] == keep["dropped"] == keep["dropped_by"]["pending"] + keep["drop"]
    assert sum(v for k, v in em["dropped_by_reason"].items() if k.startswith("pending_review:")) >= keep["dropped_by"]["pending"]
    assert not any("caption_repaired" in k for k in em["dropped_by_reason"])
    r = CliRunner().invoke(main, ["export", str(run_dir), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "not empty" in r.output
