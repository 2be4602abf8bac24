"""Stages defined outside the package, as a user's plug-in would be (imported by the contract tests; pool
workers import this module by name, as they would a user's).

* ``shout``: proposes an upper-cased caption (a ``replacement_text`` role and an edit flag), to show that a
  plug-in's proposed edit flows through review and export like ``caption_repair``'s.
* ``where_am_i``: an inline stage (one instance in the main process) that writes a file into its cache
  folder and reports the folder in its summary: two runs in one process must each see their own.
* ``count_rows``: a map stage whose summary (rows seen) is written inside pool workers.
* ``needs_fake_extra``: a stage whose pip extra is missing.
"""

from __future__ import annotations

import os

import pyarrow as pa

from curate.stages.base import Column, MapStage, Outputs, StageParams, register_stage


@register_stage
class Shout(MapStage):
    """Proposes the caption in capitals (test plug-in)."""

    name = "shout"
    flags = ("shouted",)
    OUTPUTS = Outputs(columns=(Column("loud", pa.string(), "replacement_text", "the caption in capitals"),),
                      edit_flags={"shouted": "loud"})

    def input_columns(self):
        return ["text"]

    def process(self, batch):
        texts = batch.column("text").to_pylist()
        loud = [t.upper() if t else None for t in texts]
        flags = ["shouted" if t and t != u else None for t, u in zip(texts, loud)]
        return pa.table({"loud": pa.array(loud, pa.string()), "flag": pa.array(flags, pa.string()),
                         "detail": pa.array([f"-> {u}" if f else None for f, u in zip(flags, loud)], pa.string())})


@register_stage
class WhereAmI(MapStage):
    """Writes a marker into its cache folder (test plug-in)."""

    name = "where_am_i"
    parallel = False
    OUTPUTS = Outputs(columns=(Column("n", pa.int32()),))

    def setup(self):
        self.instance = id(self)

    def process(self, batch):
        self.ctx.cache_dir.mkdir(parents=True, exist_ok=True)
        (self.ctx.cache_dir / "where_am_i.txt").write_text(str(self.ctx.cache_dir))
        self.summary["cache_dir"] = str(self.ctx.cache_dir)
        self.summary["batches"] = self.summary.get("batches", 0) + 1
        return pa.table({"n": pa.array([batch.num_rows] * batch.num_rows, pa.int32())})


@register_stage
class CountRows(MapStage):
    """Counts rows and worker processes in its summary (test plug-in)."""

    name = "count_rows"
    OUTPUTS = Outputs()

    def process(self, batch):
        self.summary["rows_seen"] = batch.num_rows
        self.summary["pids"] = {str(os.getpid()): 1}
        return pa.table({"flag": pa.nulls(batch.num_rows, pa.string())})


@register_stage
class NeedsFakeExtra(MapStage):
    """Needs a pip extra that is not installed (test plug-in)."""

    name = "needs_fake_extra"
    extra = "fake_extra_for_tests"

    def process(self, batch):  # pragma: no cover - never reached: the run fails before ingest
        raise AssertionError("ran without its extra")


__all__ = ["CountRows", "NeedsFakeExtra", "Shout", "StageParams", "WhereAmI"]
