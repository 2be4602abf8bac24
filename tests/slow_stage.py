"""A test-only stage that sleeps per shard, so a test can SIGKILL a run mid-way deterministically.

Imported by the resume test's subprocess before the CLI runs; it registers ``slow_copy``.
"""

import time

import pyarrow as pa
from pydantic import Field

from curate.stages.base import Column, MapStage, Outputs, StageParams, register_stage


class SlowParams(StageParams):
    seconds: float = Field(0.3, ge=0)


@register_stage
class SlowCopy(MapStage):
    """Copies text length into a column after sleeping (tests only)."""

    name = "slow_copy"
    Params = SlowParams
    flags = ("long_text",)
    OUTPUTS = Outputs(columns=(Column("text_len", pa.int64(), "score", "characters"),))

    def input_columns(self):
        return ["text"]

    def process(self, batch):
        time.sleep(self.params.seconds)
        lengths = [len(t or "") for t in batch.column("text").to_pylist()]
        flags = ["long_text" if n > 40 else None for n in lengths]
        return pa.table({"text_len": lengths, "flag": flags, "detail": [f"{n} chars" if f else None for n, f in zip(lengths, flags)]})
