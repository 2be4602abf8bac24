"""What the review app knows about a stage: read from its manifest entry's declared outputs, never guessed.

For each finished stage, :class:`StageView` holds the columns with a role (duplicate group,
representative, suggested label and its confidence, replacement text), the :class:`ScoreSpec` behind
each flag with its threshold, and the edit flags. The queue, the cards and the thresholds view all use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from curate.manifest import ScoreSpec, StageEntry

#: Role -> the short name the review index gives the column (``<dir>@<short>``).
INDEX_ROLES = {"duplicate_group": "group", "representative": "rep", "suggested_label": "suggested",
               "label_confidence": "confidence", "replacement_text": "replacement"}


@dataclass(frozen=True)
class StageView:
    """One finished stage, as the reviewer sees it."""

    entry: StageEntry
    roles: dict[str, str] = field(default_factory=dict)   # role -> stage column (only INDEX_ROLES)

    @classmethod
    def of(cls, entry: StageEntry) -> "StageView":
        roles = {}
        for role in INDEX_ROLES:
            col = entry.outputs.column_with_role(role)
            if col:
                roles[role] = col
        return cls(entry, roles)

    @property
    def dir(self) -> str:
        return self.entry.dir

    @property
    def title(self) -> str:
        """A short title for the stage's chip: ``image_quality`` -> ``Image quality``."""
        return self.entry.name.replace("_", " ").capitalize()

    @property
    def scores(self) -> list[ScoreSpec]:
        return list(self.entry.outputs.scores)

    def score_for(self, flag: str | None) -> ScoreSpec | None:
        return self.entry.outputs.score_for(flag) if flag else None

    def threshold(self, spec: ScoreSpec) -> float | None:
        """The threshold behind ``spec``: its param's value, else a cutoff the stage computed (summary)."""
        value = spec.threshold(self.entry.params)
        if value is None:
            cut = (self.entry.summary.get("cutoffs") or {}).get(spec.flag)
            value = float(cut) if isinstance(cut, (int, float)) and not isinstance(cut, bool) else None
        return value

    def is_edit(self, flag: str | None) -> bool:
        """Whether ``flag`` is about a proposed edit (e.g. a repaired caption), not about the item."""
        return bool(flag) and flag in self.entry.outputs.edit_flags

    @property
    def has_groups(self) -> bool:
        return "duplicate_group" in self.roles

    def index_column(self, role: str) -> str:
        return f"{self.dir}@{INDEX_ROLES[role]}"

    def score_columns(self) -> list[str]:
        """Stage columns behind its flags (each once, in declaration order)."""
        return list(dict.fromkeys(s.column for s in self.scores))


def stage_views(entries: list[StageEntry]) -> list[StageView]:
    return [StageView.of(e) for e in entries]


def reason_words(flag: str) -> str:
    """``too_dark`` -> ``too dark``: the machine reason in words."""
    return flag.replace("_", " ")


def fmt_number(v: float | None) -> str:
    """A score for people: 41, 0.93, 1.2e+03; '–' for missing."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    v = float(v)
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.3g}"


def score_text(spec: ScoreSpec, value: float | None, threshold: float | None) -> str:
    """The one score behind a flag with its threshold, e.g. ``sharpness 41 < 100``."""
    name = spec.label or spec.column.replace("_", " ")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{name} –"
    if threshold is None:
        return f"{name} {fmt_number(value)}"
    below = spec.flags_when == "below"
    if value == threshold:
        op = "≤" if below else "≥"
    elif value < threshold:
        op = "<"
    else:
        op = ">"
    return f"{name} {fmt_number(value)} {op} {fmt_number(threshold)}"
