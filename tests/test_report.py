"""``curate report``: the HTML file for the demo run and a run with every stage, read back with an HTML
parser (self-contained, escaped, counts as in the run); the selection, histogram and escaping helpers."""

from __future__ import annotations

import html.parser
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("altair", reason="needs the 'report' extra")
pytest.importorskip("vl_convert", reason="needs the 'report' extra")

from curate.cli import main  # noqa: E402
from curate.decisions import DecisionStore  # noqa: E402
from curate.errors import CurateError  # noqa: E402
from curate.fate import summarize_fates  # noqa: E402
from curate.report import build_report  # noqa: E402
from curate.report.galleries import Selection  # noqa: E402
from curate.report.plots import histogram_bins  # noqa: E402
from curate.report.safety import script_json  # noqa: E402
from curate.captions.worddiff import word_diff  # noqa: E402
from curate.rundir import RunDir  # noqa: E402
from tests.embedding_fixtures import tiny_clip_dir  # noqa: E402,F401
from tests.report_runs import PAYLOAD, demo_run, full_run  # noqa: E402
from tests.review_fixture import make_review_run  # noqa: E402

SECTIONS = ("summary", "stages", "galleries", "review", "evaluation")


class Page(html.parser.HTMLParser):
    """Every tag with its attributes, the text of each gallery's cards, the script blocks."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[tuple[dict, str]] = []
        self._script: dict | None = None
        self._buf: list[str] = []
        self.texts: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "script":
            self._script, self._buf = a, []

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._buf)))
            self._script = None

    def handle_data(self, data):
        if self._script is not None:
            self._buf.append(data)
        else:
            self.texts.append(data)

    def find(self, tag: str | None = None, **attrs) -> list[dict]:
        return [a for t, a in self.tags if (tag is None or t == tag)
                and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]

    def data(self, script_id: str):
        return json.loads(next(body for a, body in self.scripts if a.get("id") == script_id))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = demo_run(tmp_path_factory.getbasetemp())
    r = CliRunner().invoke(main, ["report", str(root), "-q"])
    assert r.exit_code == 0, r.output
    return root, r.output


@pytest.fixture(scope="module")
def full(tmp_path_factory, tiny_clip_dir):  # noqa: F811
    pytest.importorskip("open_clip")
    pytest.importorskip("cleanlab")
    root = full_run(tmp_path_factory.getbasetemp(), tiny_clip_dir)
    return root, build_report(root, quiet=True)


def _page(path: Path) -> tuple[str, Page]:
    text = path.read_text(encoding="utf-8")
    return text, Page(text)


def test_default_path_is_printed_and_written(demo):
    root, output = demo
    out = root / "report" / "index.html"
    assert out.is_file() and str(out) in output and "MB" in output


def test_self_contained_no_external_references(demo):
    root, _ = demo
    text, page = _page(root / "report" / "index.html")
    csp = page.find("meta", http_equiv="Content-Security-Policy")
    assert csp and "default-src 'none'" in csp[0]["content"] and "connect-src" not in csp[0]["content"]
    for tag, attrs in page.tags:
        assert tag not in ("link", "iframe", "object", "embed", "base", "form")
        for name in ("src", "href", "srcset", "action", "poster", "data"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith("#") or value.startswith("data:"), (tag, name, value[:80])
    # every script is inline; none loads a file
    assert all("src" not in a for a, _ in page.scripts)
    assert not re.search(r"url\(\s*['\"]?(https?:|//)", text)  # no remote CSS resources


def test_payload_caption_is_escaped(demo):
    root, _ = demo
    text, page = _page(root / "report" / "index.html")
    assert PAYLOAD not in text  # never as markup...
    assert "&lt;img src=x onerror=alert(1)&gt;" in text  # ...only as text
    assert any(PAYLOAD in t for t in page.texts)  # what a reader sees
    assert not page.find("img", src="x")
    # inside the JSON blocks too, '<' is escaped so no value can close the script element
    for attrs, body in page.scripts:
        if attrs.get("type") == "application/json":
            assert "<" not in body


def test_sections_and_stages_present(demo):
    root, _ = demo
    _, page = _page(root / "report" / "index.html")
    assert [a["id"] for a in page.find("section")] == list(SECTIONS)
    manifest = RunDir(root).manifest()
    assert [a["data-stage"] for a in page.find("article")] == [s.dir for s in manifest.finished_stages()]


def test_outcome_counts_come_from_the_fate_function(demo):
    root, _ = demo
    _, page = _page(root / "report" / "index.html")
    shown = {a["data-fate"]: int(a["data-n"]) for a in page.find("tr") if "data-fate" in a}
    s = summarize_fates(RunDir(root), pending="drop")
    assert shown["kept"] + shown["review"] + shown["dropped"] == s["items"]
    assert shown["dropped"] + shown["review"] == s["dropped"]  # undecided review items are left out by --pending drop
    assert shown["review"] == s["dropped_by"].get("pending", 0)


def _gallery_cards(text: str) -> dict[str, int]:
    """Gallery id -> number of top-level cards in its .cards container."""
    out = {}
    for m in re.finditer(r'<div class="gallery" id="([^"]+)".*?<div class="cards">(.*?)</div>\n<div class="pager">', text, re.S):
        body = m.group(2)
        out[m.group(1)] = len(re.findall(r'<(?:figure class="card[^"]*"|div class="cluster card-group") data-part=', body))
    return out


def _check_galleries(root: Path, top: int = 24, sample: int = 24) -> int:
    text, page = _page(root / "report" / "index.html")
    manifest = RunDir(root).manifest()
    cards = _gallery_cards(text)
    checked = 0
    for s in manifest.finished_stages():
        per_flag = {a["data-flag"]: a for a in page.find("div", **{"class": "gallery"}) if a.get("data-stage") == s.dir
                    and a.get("data-flag")}
        assert set(per_flag) == set(s.stats.reasons), s.dir
        for flag, n in s.stats.reasons.items():
            g = per_flag[flag]
            assert int(g["data-total"]) == n
            assert int(g["data-shown"]) == cards[g["id"]] == min(n, top + sample)
            checked += 1
    return checked


def test_stage_gallery_counts_match_the_run(demo):
    root, _ = demo
    assert _check_galleries(root) >= 6


def test_histograms_for_every_declared_score(demo):
    root, _ = demo
    _, page = _page(root / "report" / "index.html")
    specs = page.data("chart-specs")
    titles = [json.dumps(s.get("title", "")) for s in specs.values()]
    manifest = RunDir(root).manifest()
    iq = manifest.stage("image_quality")
    for score in iq.outputs.scores:
        assert any(f"({score.column})" in t or f'"{score.column}"' in t for t in titles), score.column
    # the threshold rule of min_side (64) is drawn, with the exact flagged count
    spec = next(s for s in specs.values() if "(min_side)" in json.dumps(s.get("title")))
    labels = json.dumps(spec)
    assert "below 64" in labels and f"{iq.stats.reasons['too_small']:,} flagged" in labels
    # every chart box refers to a spec
    assert {a["data-chart"] for a in page.find("div", **{"class": "chart"})} == set(specs)


def test_unfinished_run_is_a_clear_error(tmp_path):
    with pytest.raises(CurateError, match="not a run directory"):
        build_report(tmp_path, quiet=True)
    r = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert r.exit_code == 1 and "Traceback" not in r.output


@pytest.mark.slow
def test_full_run_every_stage_and_kind(full):
    root, out = full
    text, page = _page(out)
    manifest = RunDir(root).manifest()
    assert len(manifest.finished_stages()) == 11
    assert _check_galleries(root) >= 10
    kinds = {a["data-kind-title"]: a for a in page.find("div", **{"class": "kind-block"}) if "data-kind-title" in a}
    assert set(kinds) == {"Duplicate clusters", "Label issues", "Caption repairs", "Lowest / highest scores"}
    galleries = page.find("div", **{"class": "gallery"})
    by_kind = Counter(a["data-kind"] for a in galleries if not a.get("data-flag"))
    assert by_kind["clusters"] >= 3 and by_kind["labels"] == 1 and by_kind["diffs"] == 1
    # duplicate clusters: the representative is marked, members shown side by side
    assert 'class="card member rep"' in text and "representative (kept)" in text
    # the label-noise summary is drawn as a heat map
    specs = page.data("chart-specs")
    assert any("Most confused pairs" in json.dumps(s.get("title")) for s in specs.values())
    # caption repairs as a word diff with deletions and insertions
    assert '<span class="del">' in text and '<span class="ins">' in text
    # every gallery image is a small inline thumbnail
    thumbs = page.data("thumbs")
    assert thumbs and all(v.startswith(("data:image/webp;base64,", "data:image/jpeg;base64,")) for v in thumbs.values())


@pytest.mark.slow
def test_full_run_evaluation_section(full, tmp_path):
    """A real ``curate eval`` result (a linear probe on the tiny CLIP's embeddings, tested on the run's own
    input: machinery, not a quality figure) shows as a table and a chart."""
    eval_mod = pytest.importorskip("curate.eval")
    from tests.report_runs import COCO

    root, _ = full
    eval_mod.evaluate(root, eval_mod.EvalOptions(test=str(root.parent / "items.jsonl"), test_root=str(COCO / "images"),
                                                 model="linear", features="embed.image_embedding", seeds=1, epochs=5,
                                                 quiet=True, leakage=False))
    out = build_report(root, tmp_path / "r.html", quiet=True)
    text, page = _page(out)
    ev = json.loads((root / "eval" / "eval.json").read_text())
    table = text[text.index('id="eval-arms"'):text.index("</table>", text.index('id="eval-arms"'))]
    assert table.count("<tr>") == len(ev["arms"]) + 1
    for arm in ev["arms"]:
        assert f"<td>{arm['name']}</td>" in table
    specs = page.data("chart-specs")
    assert any("accuracy per arm" in json.dumps(s) for s in specs.values())


def _eval_json(curves: bool) -> dict:
    """A small eval.json as ``curate eval`` writes it (format 1): raw, curated and an arm trained as raw,
    two seeds; with ``curves``, three epochs of ``--curve`` per run."""
    def arm(name, kind, accs, curve_runs, info=None):
        runs = [{"seed": i, "train_items": 90, "accuracy": a, "seconds": 0.5,
                 **({"curve": c} if curves else {})} for i, (a, c) in enumerate(zip(accs, curve_runs))]
        return {"name": name, "kind": kind, "stage": None, "description": f"the {name} arm", "train_items": 90,
                "info": info or {}, "runs": runs,
                "accuracy": {"mean": sum(accs) / 2, "std": 0.01, "min": min(accs), "max": max(accs), "n": 2},
                "accuracy_no_leak": None, "delta_vs_raw": 0.0, "seconds": 1.0}
    raw = arm("raw", "raw", [0.70, 0.72], [[0.5, 0.6, 0.70], [0.4, 0.6, 0.72]])
    return {"format": 1, "model": {"name": "linear"}, "features": "meta.emb", "test": {"kind": "split", "items": 30},
            "classes": ["a", "b"], "seeds": [0, 1], "pending": "drop", "leakage": None, "notes": [],
            "arms": [raw, arm("curated", "curated", [0.80, 0.80], [[0.6, 0.7, 0.80], [0.6, 0.7, 0.80]]),
                     {**raw, "name": "without:00-x", "kind": "without", "info": {"same_as": "raw"}}]}


def test_evaluation_learning_curves_chart_only_when_the_eval_has_curves(tmp_path):
    """eval.json runs with ``curve`` (``curate eval --curve``) get a line chart: one line per arm, the mean
    over seeds per epoch, a min-to-max band where seeds differ; without curves, no such chart."""
    run = make_review_run(tmp_path / "run", n=40)
    (run.root / "eval").mkdir()
    charts = {}
    for curves in (True, False):
        (run.root / "eval" / "eval.json").write_text(json.dumps(_eval_json(curves)))
        text, page = _page(build_report(run.root, tmp_path / f"r{curves}.html", quiet=True))
        specs = page.data("chart-specs")
        assert sum("Test accuracy per arm" in json.dumps(s) for s in specs.values()) == 1
        charts[curves] = [s for s in specs.values() if "Test accuracy after each epoch" in json.dumps(s)]
        assert ("curate eval --curve" in text) == curves
    assert len(charts[True]) == 1 and charts[False] == []
    one_step = _eval_json(True)  # tfidf with --curve: one "epoch" each, nothing to draw
    for a in one_step["arms"]:
        a["runs"] = [{**r, "curve": r["curve"][-1:]} for r in a["runs"]]
    (run.root / "eval" / "eval.json").write_text(json.dumps(one_step))
    specs = _page(build_report(run.root, tmp_path / "r1.html", quiet=True))[1].data("chart-specs")
    assert not any("after each epoch" in json.dumps(s) for s in specs.values())
    spec = charts[True][0]
    assert "mean over 2 seeds" in json.dumps(spec["title"])
    rows = [r for d in spec["datasets"].values() for r in d]
    points = {(r["series"], r["epoch"]): (r["value"], r["low"], r["high"]) for r in rows}
    assert points[("raw", 1)] == (pytest.approx(0.45), 0.4, 0.5) and points[("curated", 3)] == (pytest.approx(0.8), 0.8, 0.8)
    assert ("without:00-x (= raw)", 3) in points  # its line lies under raw's: the legend says so
    assert {m["mark"]["type"] if isinstance(m["mark"], dict) else m["mark"] for m in spec["layer"]} == {"area", "line"}


def test_evaluation_under_a_samples_budget_says_so_and_charts_curves_over_the_samples_seen():
    """--budget samples: the section says which budget and each arm's epochs; the curve chart's x axis is the
    samples seen in raw epochs (a 60-item arm on 270 samples: a point every 2/3, the last after 4.5 passes)."""
    from curate.report.evaluation import evaluation_section

    ev = _eval_json(True)
    ev["model"] = {"name": "cnn", "epochs": 3, "samples": 270}
    ev["budget"] = {"kind": "samples", "samples": 270, "raw_items": 90, "epochs": 3}
    for a in ev["arms"]:
        a["runs"] = [{**r, "samples": 270, "epochs": 3.0} for r in a["runs"]]
    cur = ev["arms"][1]
    cur["train_items"] = 60
    cur["runs"] = [{**r, "train_items": 60, "epochs": 4.5, "curve": [0.5, 0.6, 0.7, 0.75, 0.8]} for r in cur["runs"]]
    sec = evaluation_section(ev)
    assert sec["budget"].startswith("training budget: samples: every arm trained on 270 samples (3 epochs of the raw "
                                    "arm's 90 items")
    assert [r["epochs"] for r in sec["rows"]] == [3.0, 4.5, 3.0] and sec["any_epochs"]
    spec = sec["curve_chart"]
    assert "over the training budget" in json.dumps(spec["title"]) and "epochs of the raw arm (90 items)" in json.dumps(spec)
    xs = {(r["series"], r["epoch"]) for d in spec["datasets"].values() for r in d}
    assert sorted(x for name, x in xs if name == "curated") == pytest.approx([2 / 3, 4 / 3, 2.0, 8 / 3, 3.0], abs=1e-3)
    assert sorted(x for name, x in xs if name == "raw") == [1, 2, 3]
    old = evaluation_section(_eval_json(True))  # an eval.json from before budgets: none said, no epochs column
    assert old["budget"] is None and not old["any_epochs"]


def test_review_section_counts_and_agreement(tmp_path):
    run = make_review_run(tmp_path / "run", n=120)
    ids = [i for p in run.data_shards() for i in __import__("pyarrow.parquet", fromlist=["x"]).read_table(p, columns=["id"]).column("id").to_pylist()]
    flagged = [ids[i] for i in range(120) if i % 10 == 1]  # near_duplicate, review
    store = DecisionStore(run.review_db)
    store.decide(flagged[:8], "rejected", reviewer="ana")
    store.decide(flagged[:4], "rejected", reviewer="ben")        # agrees with ana on 4
    store.decide(flagged[4:8], "accepted", reviewer="ben")       # disagrees on 4 (latest wins: accepted)
    store.close()
    out = build_report(run.root, quiet=True)
    text = out.read_text()
    section = text[text.index('<section id="review"'):text.index('<section id="evaluation"')]
    row = re.search(r"<td>01-near_dup:near_duplicate</td><td>flag</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td><td>([^<]+)</td>", section)
    assert row, section[:2000]
    assert (int(row.group(1)), int(row.group(2))) == (4, 4)  # latest decisions: 4 accepted, 4 rejected
    assert row.group(4) == "50.0%"
    assert row.group(3) == str(len(flagged) - 8 - sum(1 for i in range(120) if i % 10 == 1 and i % 13 == 7))
    pair = re.search(r"<td>ana / ben</td><td>(\d+)</td><td>([^<]+)</td><td>([^<]+)</td>", section)
    assert pair and pair.group(1) == "8" and pair.group(2) == "50.0%"


def test_large_run_galleries_stay_bounded(tmp_path):
    """3,000 items: galleries hold top + sample only, say so, and the file stays small."""
    run = make_review_run(tmp_path / "run", n=3000, shard_size=500)
    out = build_report(run.root, quiet=True, top=10, sample=5)
    text, page = _page(out)
    for g in page.find("div", **{"class": "gallery"}):
        assert int(g["data-shown"]) <= 15
        if int(g["data-total"]) > 15 and g.get("data-flag"):
            assert int(g["data-shown"]) == 15
    assert "drawn at random from the other" in text
    assert out.stat().st_size < 3_000_000


# -- helpers --------------------------------------------------------------------------------------
def test_selection_top_by_score_then_seeded_sample():
    rows = np.arange(100, 200)
    key = np.linspace(1.0, 0.0, 100)  # row 199 has the lowest score
    sel = Selection(top=5, sample=10, seed=3)
    top, sample = sel.pick(rows, key, descending=False)
    assert top.tolist() == [199, 198, 197, 196, 195]
    assert len(sample) == 10 and not set(sample) & set(top) and set(sample) <= set(rows.tolist())
    assert sample.tolist() == Selection(top=5, sample=10, seed=3).pick(rows, key, descending=False)[1].tolist()
    top_hi, _ = sel.pick(rows, key, descending=True)
    assert top_hi.tolist() == [100, 101, 102, 103, 104]
    assert "the 5 lowest" in sel.rule(100, 5, 10, "lowest") and "other 95" in sel.rule(100, 5, 10, "lowest")
    assert sel.rule(12, 5, 7, "x") == "all 12"


def test_histogram_threshold_is_a_bin_edge():
    rng = np.random.default_rng(0)
    v = rng.normal(size=1000)
    t = 0.1234
    counts, edges = histogram_bins(v, [t])
    assert t in edges.tolist() and counts.sum() == 1000
    below = counts[: edges.tolist().index(t)].sum()
    assert below == int((v < t).sum())


def test_script_json_cannot_close_the_script_element():
    out = str(script_json({"a": "</script><script>alert(1)</script>", "b": "\u2028 & <!--"}))
    assert "</script" not in out.lower() and "<!--" not in out and "<" not in out
    assert json.loads(out) == {"a": "</script><script>alert(1)</script>", "b": "\u2028 & <!--"}


def test_word_diff():
    assert word_diff("A cat <b>sat</b> here", "A cat sat here") == [
        ("same", "A cat"), ("del", "<b>sat</b>"), ("ins", "sat"), ("same", "here")]
    assert word_diff(None, "new words") == [("ins", "new words")]
