"""embedding_dedup's distributed scheme (:mod:`curate.distributed.neardup`) gives the driver reduce's results.

Map shards are written directly: embeddings around a few centres (look-alikes the margin must
keep apart), near copies whose cosine needs the phash check, copies with far hashes, mirrored copies,
exact copies (tied similarities and tied keep scores), copies of copies, rows without an embedding or a
hash; exact copies of the chain ends (tied cosines to members that are not the representative).
The same shards are reduced on the driver and as shard tasks (``run_both``: every output column
and the summary equal), over four shards one of which is empty.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tests.test_distributed_reduces import executor, run_both, split  # noqa: F401  (fixture)


def _hex(bits: np.ndarray) -> str:
    return np.packbits(bits).tobytes().hex()


def near_dup_rows(n_base: int = 300, dim: int = 24, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, dim))
    x = [centres[rng.integers(0, 8, size=n_base)] + rng.normal(scale=1.0, size=(n_base, dim))]
    h = [rng.integers(0, 2, size=(n_base, 64), dtype=np.uint8)]
    mh = [rng.integers(0, 2, size=(n_base, 64), dtype=np.uint8)]

    def flip(bits: np.ndarray, lo: int, hi: int) -> np.ndarray:
        bits = bits.copy()
        for r in bits:
            r[rng.choice(64, size=int(rng.integers(lo, hi + 1)), replace=False)] ^= 1
        return bits

    def copies(src: np.ndarray, scale: float, hashes: np.ndarray, mirrors: np.ndarray) -> None:
        x.append(x[0][src] + rng.normal(scale=scale, size=(len(src), dim)))
        h.append(hashes)
        mh.append(mirrors)

    src = rng.choice(n_base, size=150, replace=False)
    near, far, mirrored, exact, weak = src[:45], src[45:70], src[70:95], src[95:120], src[120:]
    copies(near, 0.75, flip(h[0][near], 0, 12), flip(mh[0][near], 0, 12))  # cosine ~0.85-0.95: phash decides
    copies(far, 0.75, flip(h[0][far], 25, 35), flip(mh[0][far], 25, 35))  # pixels disagree
    copies(mirrored, 0.75, flip(mh[0][mirrored], 0, 8), flip(h[0][mirrored], 0, 8))  # left-right flips
    copies(weak, 0.2, flip(h[0][weak], 20, 30), flip(mh[0][weak], 20, 30))  # above accept_similarity
    for _ in range(2):  # exact copies: three equal embeddings and hashes each
        x.append(x[0][exact])
        h.append(h[0][exact])
        mh.append(mh[0][exact])
    chain_src = np.arange(n_base, n_base + 20)  # copies of the near copies
    x_all = np.concatenate(x)
    x.append(x_all[chain_src] + rng.normal(scale=0.4, size=(20, dim)))
    h.append(flip(np.concatenate(h)[chain_src], 0, 6))
    mh.append(flip(np.concatenate(mh)[chain_src], 0, 6))
    for _ in range(2):  # exact copies of the chain ends: tied links that are not to the representative
        x.append(x[-1 - _])
        h.append(h[-1 - _])
        mh.append(mh[-1 - _])
    x, h, mh = np.concatenate(x).astype(np.float32), np.concatenate(h), np.concatenate(mh)
    order = rng.permutation(len(x))
    x, h, mh = x[order], h[order], mh[order]
    n = len(x)
    emb = [v.tolist() for v in x]
    hashes, mirrors = [_hex(b) for b in h], [_hex(b) for b in mh]
    for i in rng.choice(n, size=6, replace=False).tolist():
        emb[i] = None
    for i in rng.choice(n, size=8, replace=False).tolist():
        hashes[i] = mirrors[i] = None
    score = rng.integers(0, 3, size=n).astype(np.float64)  # many ties
    return pa.table({"id": [f"im{i:05d}" for i in range(n)], "embedding": pa.array(emb, pa.list_(pa.float32())),
                     "image_hash": pa.array(hashes, pa.string()), "mirror_hash": pa.array(mirrors, pa.string()),
                     "keep_score": pa.array(score, mask=rng.random(n) < 0.05)})


@pytest.fixture(scope="module")
def rows():
    return near_dup_rows()


def shards(table: pa.Table, columns=None) -> list[pa.Table]:
    if columns is not None:
        table = table.select(["id", "embedding", *columns, "keep_score"])
    n = table.num_rows
    return split(table, [n // 3, 0, n // 4, n - n // 3 - n // 4])


@pytest.mark.parametrize("params,columns", [
    ({}, ["image_hash"]),
    ({"mirror": True, "keep": "first", "k": 6}, ["image_hash", "mirror_hash"]),
    ({"max_distance": 8, "accept_similarity": 0.97, "min_margin": 0.02}, ["image_hash"]),
    ({"verify": "none", "k": 4, "min_similarity": 0.8}, []),
])
def test_embedding_dedup_distributed_equals_driver(tmp_path, executor, rows, params, columns,  # noqa: F811
                                                   monkeypatch):
    from curate.distributed import components

    monkeypatch.setattr(components, "EDGES_PER_TASK", 20)  # components in rounds over several partitions
    summary = run_both(tmp_path, "embedding_dedup", {"field": "image", "search": "exact", **params},
                       shards(rows, columns), executor)
    assert summary["near_duplicates"] >= 60 and summary["embedded"] == rows.num_rows - 6
    assert summary["candidate_pairs"] > summary["verified_pairs"]  # the margin (and phash) rejected some
    assert ("unhashed" in summary) == bool(columns)


def test_verification_and_mirror_change_the_result(tmp_path, executor, rows):  # noqa: F811
    """The cases above are not one result four times: phash rejects pairs that the embedding alone
    accepts, and the mirrored hash admits left-right flips."""
    base = {"field": "image", "search": "exact"}
    plain = run_both(tmp_path / "plain", "embedding_dedup", base, shards(rows, ["image_hash"]), executor)
    mirror = run_both(tmp_path / "mirror", "embedding_dedup", {**base, "mirror": True}, shards(rows), executor)
    loose = run_both(tmp_path / "none", "embedding_dedup", {**base, "verify": "none"}, shards(rows, []), executor)
    assert loose["verified_pairs"] > mirror["verified_pairs"] > plain["verified_pairs"]


def test_fewer_than_two_embeddings_and_no_rows(tmp_path, executor, rows):  # noqa: F811
    one = rows.slice(0, 5).set_column(1, "embedding", pa.array([None, [1.0] * 24, None, None, None],
                                                                pa.list_(pa.float32())))
    summary = run_both(tmp_path / "one", "embedding_dedup", {"field": "image"}, split(one, [2, 0, 3]), executor)
    assert summary["candidate_pairs"] == 0 and summary["largest_cluster"] == 1 and summary["embedded"] == 1
    assert run_both(tmp_path / "none", "embedding_dedup", {"field": "image"}, [rows.slice(0, 0)] * 2, executor) == {}


def test_approximate_search_reduces_on_the_driver(tmp_path, executor, rows, caplog):  # noqa: F811
    from curate.distributed.compare import reduce_map_shards, write_map_shards

    write_map_shards(tmp_path / "_map", shards(rows, ["image_hash"]))
    with caplog.at_level("INFO", logger="curate.distributed"), pytest.raises(ValueError, match="no distributed scheme"):
        reduce_map_shards("embedding_dedup", {"field": "image", "search": "approximate"}, tmp_path / "_map", tmp_path,
                          4, executor=executor)
    assert "search: approximate" in caplog.text
