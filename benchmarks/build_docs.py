"""Assemble docs/benchmarks.md from the per-topic files in docs/benchmarks/ (run after editing one).

    python benchmarks/build_docs.py
"""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
TOPICS = [("ingest", "Ingest (issue: the spine)"), ("dedup", "Duplicates"),
          ("embeddings", "Embeddings, CLIP score, semantic dedup, outliers"), ("label_noise", "Label noise"),
          ("caption_repair", "Caption repair"), ("review", "Review app"), ("eval", "curate eval: does curation pay?"), ("report", "Report"),
          ("ray", "Scale-out: Ray executor, distributed dedup, object storage")]
HEADER = """# Benchmarks

Every figure below was measured by a script in `benchmarks/` on real data from `../shared/data` (see each
folder's SOURCE.txt), with the obvious alternative measured in the same run. Each section names the
machine and the exact command. The per-topic files in `docs/benchmarks/` hold the same text; this page
is assembled from them by `python benchmarks/build_docs.py`.

Machines: the development VM (x86_64, 2 cores, 24 GiB; during most runs shared with five other
developers' jobs, load average 5-10, which each section states) and, for GPU figures, one lent NVIDIA H100
80GB (16 CPU cores, PyTorch 2.11 + CUDA 13).

## Contents
"""


def build() -> str:
    out = [HEADER] + [f"- {title}: `docs/benchmarks/{slug}.md`" for slug, title in TOPICS] + [""]
    for slug, title in TOPICS:
        lines = (DOCS / "benchmarks" / f"{slug}.md").read_text(encoding="utf-8").strip().splitlines()
        out += ["", f"## {title}", ""] + [("#" + line) if line.startswith("#") else line for line in lines[1:]]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    (DOCS / "benchmarks.md").write_text(build(), encoding="utf-8")
