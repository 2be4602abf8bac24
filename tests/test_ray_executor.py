"""The Ray executor runs the same shard tasks as the local one and gives the same shards."""

import pytest

from curate.config import load_pipeline
from curate.fate import iter_fates
from curate.rundir import RunDir
from curate.runner import Runner
from curate.shards import read_stage
from tests.conftest import EXAMPLES

pytest.importorskip("ray", reason="the ray executor needs 'pip install curate[ray]'")


@pytest.mark.slow
def test_ray_and_local_give_the_same_annotations(make_pipeline, tmp_path):
    stages = [{"image_quality": {"min_side": 64}}, {"text_quality": {"min_words": 2}}]
    cfg = {"format": "coco", "path": str(EXAMPLES / "coco"), "shard_size": 8}
    local = Runner(load_pipeline(make_pipeline(cfg, stages, workers=2)), output=str(tmp_path / "local"), quiet=True)
    local.execute()
    ray_run = Runner(load_pipeline(make_pipeline(cfg, stages, workers=2, executor="ray")), output=str(tmp_path / "ray"),
                     quiet=True)
    m = ray_run.execute()
    assert m.config["executor"] == "ray"
    for d in ("00-image_quality", "01-text_quality"):
        assert read_stage(local.run, d).equals(read_stage(ray_run.run, d))
    kept = lambda run: sorted(i for f in iter_fates(RunDir(run)) for i, k in zip(f.ids, f.kept) if k)
    assert kept(tmp_path / "local") == kept(tmp_path / "ray")
