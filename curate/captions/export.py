"""What export takes from a caption_repair stage: the chosen caption replaces ``text``, and the
original can be kept as a ``caption_original`` column (``curate export --keep-original-caption``)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from curate.rundir import RunDir, shard_name


def caption_stage_dir(run: RunDir) -> str | None:
    """The directory of the run's last finished caption_repair stage, if any."""
    dirs = [s["dir"] for s in run.load_manifest().get("stages", [])
            if s.get("name") == "caption_repair" and s.get("status") == "done"]
    return dirs[-1] if dirs else None


def apply_chosen_captions(run: RunDir, stage_dir: str | None, shard: int, keep_mask: list[bool], kept: pa.Table, *,
                          keep_original: bool = False) -> pa.Table:
    """``kept`` (the shard's kept rows) with ``text`` set to the chosen caption where the stage chose one,
    plus ``caption_original`` (the text as ingested) if ``keep_original``."""
    if stage_dir is None:
        return kept
    t = pq.read_table(run.stage_dir(stage_dir) / shard_name(shard))
    if "caption" not in t.column_names:  # an empty shard carries only the flag columns
        return kept
    mask = pa.array(keep_mask, pa.bool_())
    chosen = t.column("caption").filter(mask).to_pylist()
    texts = kept.column("text").to_pylist()
    new = [c if c is not None else old for c, old in zip(chosen, texts)]
    out = kept.set_column(kept.schema.get_field_index("text"), "text", pa.array(new, pa.string()))
    if keep_original:
        out = out.append_column("caption_original", pa.array(texts, pa.string()))
    return out
