"""Fixtures for tests that need a CLIP model offline: ``from tests.embedding_fixtures import tiny_clip_dir``.

``tiny_clip_dir`` is a folder usable as ``model: local-dir:<folder>`` (random but fixed weights)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory):
    pytest.importorskip("open_clip", reason="needs curate[clip]")
    from curate.models.testing import write_tiny_clip

    return write_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))
