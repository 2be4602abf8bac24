"""The run manifest (``runs/<name>/manifest.json``) as typed models: the contract every consumer reads.

The runner writes it; ``status``, ``export``, the review app, the report and ``eval`` read it, always
through :class:`curate.rundir.RunDir` (``run.manifest()``, ``run.require_finished()``), never as a raw dict.

Each stage entry carries the stage's **declared outputs** (:class:`StageOutputs`): its columns with their
types and *roles*, the score and threshold behind each flag, and which flags are about a proposed edit
rather than about the item. Consumers find "the duplicate group", "the suggested label" or "the repaired
caption" by role, never by guessing a column name; a plug-in stage that declares its roles shows up in
review, export and the report like a built-in one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from curate.errors import CurateError

#: Roles a stage column may have, and what consumers do with them.
ROLES: dict[str, str] = {
    "duplicate_group": "id of the item's duplicate cluster (items with the same value are copies of each other)",
    "representative": "bool: the item kept for its duplicate cluster",
    "group_size": "number of items in the item's duplicate cluster",
    "suggested_label": "a label the stage proposes instead of the given one (applied when a reviewer accepts it)",
    "label_confidence": "the stage's confidence in its suggested label (0-1)",
    "replacement_text": "a proposed new value of the record's text (e.g. a repaired caption)",
    "embedding": "a vector per item (list<float>), usable as features by later stages and eval",
    "score": "a number behind a flag (see the stage's scores)",
}

Role = Literal["duplicate_group", "representative", "group_size", "suggested_label", "label_confidence",
               "replacement_text", "embedding", "score"]

#: Record column that an edit role proposes a new value for.
EDIT_TARGET: dict[str, str] = {"replacement_text": "text", "suggested_label": "label"}


class _Model(BaseModel):
    # Unknown keys (from older or newer versions) are ignored when reading, never an error.
    model_config = ConfigDict(extra="ignore")


class ColumnSpec(_Model):
    """One output column of a stage."""

    name: str
    type: str = Field(description="Arrow type, as pyarrow prints it (e.g. 'float', 'list<item: float>')")
    role: Optional[Role] = None
    description: str = ""


class ScoreSpec(_Model):
    """The score behind a flag: ``flag`` is set when ``column`` is below/above the ``param`` threshold."""

    column: str
    flag: str
    param: Optional[str] = Field(None, description="the stage param holding the threshold; None when the "
                                                   "cutoff is computed (then it is in the stage summary)")
    flags_when: Literal["below", "above"] = "below"
    label: str = Field("", description="short human name of the score, e.g. 'sharpness'")

    def threshold(self, params: dict[str, Any]) -> Optional[float]:
        value = params.get(self.param) if self.param else None
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    def is_flagged(self, value: float, threshold: float) -> bool:
        return value < threshold if self.flags_when == "below" else value > threshold


class StageOutputs(_Model):
    """What a stage writes besides ``id``/``flag``/``action``/``detail``, declared once by the stage."""

    columns: list[ColumnSpec] = Field(default_factory=list)
    scores: list[ScoreSpec] = Field(default_factory=list)
    #: Flags about a proposed edit (flag -> the column holding the proposed value), not about the item.
    edit_flags: dict[str, str] = Field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column_with_role(self, role: str) -> Optional[str]:
        """The (first) column with this role, or None."""
        return next((c.name for c in self.columns if c.role == role), None)

    def score_for(self, flag: str) -> Optional[ScoreSpec]:
        return next((s for s in self.scores if s.flag == flag), None)

    def edits(self) -> dict[str, str]:
        """Record column -> stage column proposing a new value for it (from the edit roles)."""
        out = {}
        for c in self.columns:
            if c.role in EDIT_TARGET:
                out.setdefault(EDIT_TARGET[c.role], c.name)
        return out


class StageStats(_Model):
    rows: int = 0
    flagged: int = 0
    review: int = 0
    dropped: int = 0
    reasons: dict[str, int] = Field(default_factory=dict)


class StageEntry(_Model):
    """One stage of the run, as the runner recorded it."""

    index: int
    name: str
    dir: str
    kind: Literal["map", "global"] = "map"
    fingerprint: str = ""
    status: Literal["running", "done"] = "running"
    params: dict[str, Any] = Field(default_factory=dict)
    outputs: StageOutputs = Field(default_factory=StageOutputs)
    stats: StageStats = Field(default_factory=StageStats)
    summary: dict[str, Any] = Field(default_factory=dict)
    title: str = Field("", description="the stage's one-line description, for people")
    started: Optional[str] = None
    finished: Optional[str] = None
    seconds: Optional[float] = None

    @property
    def done(self) -> bool:
        return self.status == "done"

    @property
    def columns(self) -> list[str]:
        return self.outputs.names


class InputEntry(_Model):
    """The ingest step: where the records came from and what could not be read."""

    format: str
    path: str
    fingerprint: str = ""
    status: Literal["running", "done"] = "running"
    shards: int = 0
    rows: int = 0
    quarantined: int = 0
    quarantine_reasons: dict[str, int] = Field(default_factory=dict)
    repeated_ids: int = 0  # items whose content id repeated an earlier one: numbered <id>-2, <id>-3, ...
    seconds: Optional[float] = None
    started: Optional[str] = None
    finished: Optional[str] = None


class Manifest(_Model):
    """The whole ``manifest.json``."""

    curate_version: str = ""
    name: str = ""
    pipeline_file: Optional[str] = None
    created: Optional[str] = None
    updated: Optional[str] = None
    status: Optional[Literal["done"]] = None
    config: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    input: Optional[InputEntry] = None
    stages: list[StageEntry] = Field(default_factory=list)
    #: The end-of-run table (one row per step: rows, flagged, review, dropped, seconds).
    steps: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status == "done"

    def finished_stages(self) -> list[StageEntry]:
        """The stages that finished, in pipeline order."""
        return [s for s in self.stages if s.done]

    def stage(self, ref: str | int) -> StageEntry:
        """A stage by name (the last one of that name), directory (``02-caption_repair``) or index."""
        for s in reversed(self.stages):
            if ref in (s.name, s.dir) or str(ref) == str(s.index):
                return s
        names = ", ".join(s.dir for s in self.stages) or "none"
        raise CurateError(f"no stage {ref!r} in this run; its stages: {names}")

    def find_stage(self, ref: str | int) -> Optional[StageEntry]:
        try:
            return self.stage(ref)
        except CurateError:
            return None


# -- what a stage declares (as data; the runner turns it into StageOutputs) ---------------------------
@dataclass(frozen=True)
class Column:
    """One output column: name, Arrow type, and optionally its role (see :data:`curate.manifest.ROLES`)."""

    name: str
    type: pa.DataType
    role: Optional[Role] = None
    description: str = ""


Score = ScoreSpec  # the score behind a flag: Score(column, flag, param, flags_when="below"|"above")


@dataclass(frozen=True)
class Outputs:
    """A stage's declared outputs: its columns, the scores behind its flags, its edit flags."""

    columns: tuple[Column, ...] = ()
    scores: tuple[ScoreSpec, ...] = ()
    #: Flags about a proposed edit (flag -> column with the proposed value), not about the item itself.
    edit_flags: dict[str, str] = field(default_factory=dict)

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([(c.name, c.type) for c in self.columns])

    def to_manifest(self) -> StageOutputs:
        return StageOutputs(columns=[ColumnSpec(name=c.name, type=str(c.type), role=c.role, description=c.description)
                                     for c in self.columns],
                            scores=list(self.scores), edit_flags=dict(self.edit_flags))
