"""Stage base classes and the stage registry.

A stage is a small class registered under a short snake_case name (the name used in YAML), with a
pydantic params model. Two kinds:

* :class:`MapStage` turns one batch (a ``pyarrow.Table`` of the columns it reads, plus ``id``) into one
  row-aligned table of its own columns plus ``flag`` and ``detail``.
* :class:`GlobalStage` first maps each shard (signatures, features) and then reduces over all rows.

Stages know nothing about executors, run directories or shards: the runner (``curate.runner``) reads
the columns a stage asks for, calls it, adds ``id`` and ``action`` and writes the shard.

A stage **declares its outputs once, as data** (``OUTPUTS``, or :meth:`Stage.declare_outputs` when they
depend on the params): its columns with types and roles (:class:`Column`), the score and threshold behind
each flag (:class:`Score`) and the flags that are about a proposed edit. The runner copies the declaration
into the stage's manifest entry (:class:`curate.manifest.StageOutputs`), which is all review, export, the
report and eval know of a stage.
"""

from __future__ import annotations

import logging
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Union

import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from curate.errors import CurateError
from curate.manifest import Column, Outputs, Score, ScoreSpec, StageEntry  # noqa: F401  (stage authors import them from here)

Action = Literal["keep", "review", "drop"]

log = logging.getLogger(__name__)


class StageParams(BaseModel):
    """Parameters every stage accepts. Subclass it and add the stage's own fields.

    ``action`` is what happens to a flagged item: ``keep`` (annotate only), ``review`` (a person decides)
    or ``drop``. It may also map flag reasons to actions, with ``default`` for the rest, e.g.
    ``{undecodable: drop, default: review}``.
    """

    model_config = ConfigDict(extra="forbid")

    action: Union[Action, dict[str, Action]] = "review"

    # Params that change how fast a stage runs but never what it outputs (left out of the fingerprint).
    runtime_fields: ClassVar[frozenset[str]] = frozenset({"batch_size", "device", "num_workers"})
    # Params added after run directories existed whose default keeps the old output: left out of the
    # fingerprint while at their default, so existing runs are not redone.
    added_at_default: ClassVar[frozenset[str]] = frozenset()

    def action_for(self, flag: str | None) -> str | None:
        """The action for a row with this flag (``None`` for an unflagged row)."""
        if flag is None:
            return None
        if isinstance(self.action, str):
            return self.action
        return self.action.get(flag, self.action.get("default", "review"))

    def fingerprint_dict(self) -> dict[str, Any]:
        """The params that determine the stage's output."""
        fields = type(self).model_fields
        return {k: v for k, v in self.model_dump(mode="json").items()
                if k not in self.runtime_fields and not (k in self.added_at_default and v == fields[k].default)}


#: Python modules each pip extra provides (checked before a run starts).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "dedup": ("datasketch", "imagehash"),
    "labels": ("cleanlab", "sklearn"),
    "captions": ("ftfy",),
    "clip": ("torch", "open_clip"),
    "vision": ("torch", "timm"),
    "text": ("sentence_transformers",),
    "app": ("streamlit",),
    "hf": ("datasets",),
    "ray": ("ray",),
}


def missing_extra_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    return [m for m in EXTRA_MODULES.get(extra, ()) if importlib.util.find_spec(m) is None]


@dataclass
class StageContext:
    """What a stage is told about its inputs (never where its outputs go)."""

    stage_index: int
    cache_dir: Path
    workers: int = 1
    #: The manifest entries of the stages before this one (finished), in pipeline order.
    upstream: tuple[StageEntry, ...] = ()
    #: ``curate run -q``: a stage's own progress bars stay off
    quiet: bool = False

    @property
    def available_columns(self) -> tuple[str, ...]:
        """Earlier stages' columns as ``stage.column``, for validation."""
        return tuple(f"{s.name}.{c}" for s in self.upstream for c in s.outputs.names)

    def upstream_stage(self, ref: str) -> StageEntry | None:
        """The latest earlier stage with this name or directory."""
        return next((s for s in reversed(self.upstream) if ref in (s.name, s.dir)), None)


class Stage:
    """Common behaviour of map and global stages."""

    name: ClassVar[str]
    Params: ClassVar[type[StageParams]] = StageParams
    kind: ClassVar[str]
    #: Bump when the stage's output changes for the same params (invalidates cached results).
    version: ClassVar[str] = "1"
    #: Machine reasons this stage may put in ``flag``.
    flags: ClassVar[tuple[str, ...]] = ()
    #: pip extra the stage needs beyond the base install (named in error messages and ``curate stages``).
    extra: ClassVar[str | None] = None
    #: False for stages that must run one shard at a time in the main process (e.g. a GPU model). An
    #: instance may set it from its params (e.g. only when a model is configured).
    parallel: ClassVar[bool] = True
    #: The stage's outputs (override :meth:`declare_outputs` instead when they depend on the params).
    OUTPUTS: ClassVar[Outputs] = Outputs()

    def __init__(self, params: StageParams, ctx: StageContext | None = None):
        self.params = params
        self.ctx = ctx
        #: Dataset-level figures for the manifest. The runner collects it after each task (map stages) or
        #: after the reduce and merges the parts (:meth:`merge_summaries`).
        self.summary: dict[str, Any] = {}

    # -- to override -------------------------------------------------------------------------
    def input_columns(self) -> list[str]:
        """Columns to read: record columns (``image``, ``text``, ...) or earlier stages' columns,
        as ``column`` (latest earlier stage that has it) or ``stage.column``. ``id`` is always given."""
        return []

    def declare_outputs(self) -> Outputs:
        """The stage's declared outputs (default: the class's ``OUTPUTS``)."""
        return self.OUTPUTS

    def output_schema(self) -> pa.Schema:
        """The stage's own columns (without id/flag/action/detail), from the declaration."""
        return self.declare_outputs().schema

    def required_extras(self) -> tuple[str, ...]:
        """pip extras this configured stage needs (default: the class's ``extra``)."""
        return (self.extra,) if self.extra else ()

    def check_extras(self) -> None:
        """A clear error naming the extra when one of its modules is missing."""
        for extra in self.required_extras():
            missing = missing_extra_modules(extra)
            if missing:
                raise CurateError(f"stage {self.name!r} needs the '{extra}' extra (missing: {', '.join(missing)}); "
                                  f"install it with: pip install 'curate[{extra}]'")

    @staticmethod
    def merge_summaries(parts: list[dict[str, Any]]) -> dict[str, Any]:
        """Merge per-task summaries: numbers add up, dicts merge recursively, anything else: the last one."""
        out: dict[str, Any] = {}
        for part in parts:
            for k, v in part.items():
                old = out.get(k)
                if isinstance(v, bool) or not isinstance(old, (int, float, dict)) or isinstance(old, bool):
                    out[k] = v if not isinstance(v, dict) else Stage.merge_summaries([v])
                elif isinstance(v, dict) and isinstance(old, dict):
                    out[k] = Stage.merge_summaries([old, v])
                elif isinstance(v, (int, float)) and isinstance(old, (int, float)):
                    out[k] = old + v
                else:
                    out[k] = v
        return out

    def setup(self) -> None:
        """Called once per worker process before the first batch (load models here)."""

    @classmethod
    def describe(cls) -> str:
        """One-line description (the first line of the class docstring)."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


class MapStage(Stage):
    """A stage that annotates each batch independently."""

    kind: ClassVar[str] = "map"

    def process(self, batch: pa.Table) -> pa.Table:
        """Return a table row-aligned with ``batch``: the stage's columns plus ``flag`` and ``detail``."""
        raise NotImplementedError


class GlobalStage(Stage):
    """A stage that needs the whole dataset: map each shard, then reduce over everything."""

    kind: ClassVar[str] = "global"

    def map(self, batch: pa.Table) -> pa.Table:
        """Per-shard work (signatures, features). Default: the input columns unchanged.

        The result is cached per shard, so a crash in ``reduce`` does not redo the maps."""
        return batch

    def reduce(self, mapped: pa.Table) -> pa.Table:
        """``mapped`` is every shard's map output concatenated in shard order, with ``id``.

        Return a row-aligned table of the stage's columns plus ``flag`` and ``detail``. Put dataset-level
        figures in ``self.summary``; they are written to the manifest."""
        raise NotImplementedError


# -- registry ------------------------------------------------------------------------------------
_REGISTRY: dict[str, type[Stage]] = {}


def register_stage(cls: type[Stage]) -> type[Stage]:
    """Class decorator: make a stage available in YAML under ``cls.name``."""
    name = getattr(cls, "name", None)
    if not name or not name.replace("_", "").isalnum() or name.lower() != name:
        raise ValueError(f"stage {cls.__qualname__} needs a snake_case 'name', got {name!r}")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"stage name {name!r} is registered twice ({_REGISTRY[name].__qualname__}, {cls.__qualname__})")
    _REGISTRY[name] = cls
    return cls


def registry() -> dict[str, type[Stage]]:
    """All registered stages by name (imports the built-in stage modules on first use)."""
    from curate import stages as _builtin  # noqa: F401  (registers the built-ins)

    _builtin.load_builtin_stages()
    return dict(sorted(_REGISTRY.items()))


def get_stage_class(name: str) -> type[Stage]:
    """The stage class registered as ``name``; a KeyError lists the registered names."""
    reg = registry()
    if name not in reg:
        raise KeyError(name)
    return reg[name]


# -- helpers for stage authors ---------------------------------------------------------------------
def flag_table(columns: dict[str, Any], flags: list[str | None], details: list[str | None],
               schema: pa.Schema | None = None) -> pa.Table:
    """Build a stage result table from column arrays/lists plus the flag and detail lists."""
    data = dict(columns)
    data["flag"] = pa.array(flags, type=pa.string())
    data["detail"] = pa.array(details, type=pa.string())
    if schema is not None:
        arrays = [pa.array(data[f.name], type=f.type) if not isinstance(data[f.name], (pa.Array, pa.ChunkedArray))
                  else data[f.name] for f in schema]
        arrays += [data["flag"], data["detail"]]
        return pa.Table.from_arrays(arrays, names=[*schema.names, "flag", "detail"])
    return pa.table(data)

