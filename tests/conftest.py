"""Shared fixtures: paths, small synthetic images, pipelines in temporary run directories."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared evaluation data (../shared/data); tests that need it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared evaluation data not found at {SHARED_DATA} (only maintainers and CI have it)")
    return SHARED_DATA


def image_bytes(width: int = 64, height: int = 48, fmt: str = "JPEG", seed: int = 0, value: int | None = None) -> bytes:
    """Encoded bytes of a random (or constant ``value``) RGB image."""
    rng = np.random.default_rng(seed)
    if value is None:
        arr = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    else:
        arr = np.full((height, width, 3), value, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, fmt)
    return buf.getvalue()


def write_pipeline(tmp_path: Path, input_cfg: dict, stages: list, name: str = "t", workers: int = 1, **extra) -> Path:
    """Write a pipeline YAML into ``tmp_path`` whose output is ``tmp_path/run``."""
    import yaml

    doc = {"name": name, "input": input_cfg, "output": str(tmp_path / "run"), "workers": workers, "stages": stages, **extra}
    p = tmp_path / "pipeline.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


@pytest.fixture
def make_pipeline(tmp_path):
    def _make(input_cfg: dict, stages: list, **kw) -> Path:
        return write_pipeline(tmp_path, input_cfg, stages, **kw)

    return _make


@pytest.fixture(autouse=True)
def _restore_main_module():
    """Streamlit's AppTest replaces ``sys.modules['__main__']`` with the app script and leaves it there;
    a process pool started later in this pytest process (forkserver/spawn) would re-run that script in
    its workers. Put the real one back after every test."""
    import sys

    main = sys.modules.get("__main__")
    yield
    if main is not None:
        sys.modules["__main__"] = main


def read_all(cfg: dict):
    """Every record and quarantine row of an input config, read in-process through the project's reader."""
    import pyarrow as pa

    from curate.config import InputConfig
    from curate.readers import build_shard, make_reader

    reader = make_reader(InputConfig(**cfg))
    recs, quas = [], []
    for t in reader.tasks():
        res = build_shard(reader.read(t), limits=reader.limits)
        recs.append(res.records)
        quas.append(res.quarantine)
    return pa.concat_tables(recs), pa.concat_tables(quas)
