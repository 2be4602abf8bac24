"""A test-only stage that sleeps per shard, so a test can SIGKILL a run mid-way deterministically.

Imported by the resume test's subprocess before the CLI runs; it registers ``slow_copy``.

With ``SLOW_COPY_GATE`` set to a folder in the environment, only the first ``SLOW_COPY_FREE`` shards (default
2) finish; every later one waits there until the run is interrupted or a file ``open`` appears in the
folder, so a test cannot lose a race to a run that finishes first. The environment, not a parameter, so a
rerun's stage is the same stage.
"""

import itertools
import os
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
        _wait_at_gate()
        lengths = [len(t or "") for t in batch.column("text").to_pylist()]
        flags = ["long_text" if n > 40 else None for n in lengths]
        return pa.table({"text_len": lengths, "flag": flags, "detail": [f"{n} chars" if f else None for n, f in zip(lengths, flags)]})


def gated_task(task: tuple[str, int]) -> dict:
    """An executor task for tests: ``(gate folder, i)``; the first one passes the gate, the others wait
    there; a task that finishes leaves ``done-<i>`` in the folder."""
    gate, i = task
    _wait_at_gate(gate, free=1, limit_s=60.0)
    open(os.path.join(gate, f"done-{i}"), "w").close()
    return {"rows": 1}


def _wait_at_gate(gate: str | None = None, free: int | None = None, limit_s: float = 120.0) -> None:
    gate = gate or os.environ.get("SLOW_COPY_GATE")
    if not gate:
        return
    for ticket in itertools.count():  # one ticket per shard, taken atomically across worker processes
        try:
            os.close(os.open(os.path.join(gate, f"ticket-{ticket}"), os.O_CREAT | os.O_EXCL))
            break
        except FileExistsError:
            continue
    if ticket >= (free if free is not None else int(os.environ.get("SLOW_COPY_FREE", "2"))):
        deadline = time.monotonic() + limit_s  # held until the test interrupts the run or opens the gate
        while time.monotonic() < deadline and not os.path.exists(os.path.join(gate, "open")):
            time.sleep(0.05)
