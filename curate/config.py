"""Pipeline YAML: pydantic models, parsing and error messages that name the YAML path.

Contract::

    name: demo
    input: {format: coco, path: examples/coco}
    output: runs/demo
    executor: local
    workers: 2
    stages:
      - image_quality: {min_side: 64, action: drop}
      - text_quality: {min_words: 2, action: review}
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curate.errors import ConfigError
from curate.stages.base import Stage, StageParams, get_stage_class, registry

INPUT_FORMATS = ("imagefolder", "captions", "csv", "jsonl", "parquet", "webdataset", "coco", "hf")


class InputConfig(BaseModel):
    """Where the raw data is and how to read it."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["imagefolder", "captions", "csv", "jsonl", "parquet", "webdataset", "coco", "hf"]
    path: str = Field(description="dataset root: a folder, a file (manifest, .zip, captions JSON) or a glob of tar shards")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="for manifest formats: record field -> source column, e.g. {image: file_name, text: caption}",
    )
    root: Optional[str] = Field(None, description="folder that image paths in a manifest are relative to (default: the manifest's folder)")
    captions: Literal["first", "all"] = Field(
        "first", description="coco: one row per image with the other captions in meta ('first') or one row per caption ('all')"
    )
    shard_size: int = Field(1000, ge=1, description="records per data shard")
    max_image_pixels: int = Field(178_956_970, ge=1, description="larger images are quarantined as decompression bombs")
    limit: Optional[int] = Field(None, ge=1, description="read at most this many items (for a quick look)")


class PipelineConfig(BaseModel):
    """A whole pipeline file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    input: InputConfig
    output: Optional[str] = Field(None, description="run directory (default: runs/<name>)")
    executor: Literal["local", "ray"] = "local"
    address: Optional[str] = Field(None, description="ray: cluster address (default: start a local Ray)")
    workers: int = Field(2, ge=1, description="worker processes for the local executor")
    stages: list[Any] = Field(default_factory=list, description="stages in order, each {name: {params}}")

    def output_dir(self) -> Path:
        return Path(self.output or f"runs/{self.name}")


class StageSpec(BaseModel):
    """One parsed stage entry: its registered name, index and validated params."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    index: int
    name: str
    params: StageParams

    @property
    def cls(self) -> type[Stage]:
        return get_stage_class(self.name)

    @property
    def dirname(self) -> str:
        return f"{self.index:02d}-{self.name}"


class Pipeline(BaseModel):
    """A validated pipeline: the config plus parsed stage specs."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    config: PipelineConfig
    stages: list[StageSpec]
    source_path: Optional[str] = None

    def resolved(self) -> dict[str, Any]:
        """The resolved config (defaults filled in), as written to the manifest."""
        d = self.config.model_dump(mode="json")
        d["stages"] = [{s.name: s.params.model_dump(mode="json")} for s in self.stages]
        return d


# -- error formatting --------------------------------------------------------------------------
def _loc(parts) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out or "(top level)"


_TYPE_WORDS = {
    "int_parsing": "an integer",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_parsing": "a number",
    "float_type": "a number",
    "bool_parsing": "true or false",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
}


def _constraint_words(err: dict) -> str | None:
    ctx = err.get("ctx") or {}
    t = err["type"]
    if t in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[t]
        bound = next(iter(ctx.values()))
        return f"a number {op} {bound}"
    return None


def _bounds(model: type[BaseModel] | None, loc: tuple) -> str:
    """' >= 1' style text for the numeric constraints of the field at ``loc`` (if any)."""
    info = _field_names(model, loc).get(loc[-1]) if model is not None and loc else None
    if info is None:
        return ""
    parts = []
    for m in getattr(info, "metadata", []):
        for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None:
                parts.append(f"{op} {v}")
    return (" " + " and ".join(parts)) if parts else ""


def _format_error(err: dict, prefix: list, fields: dict[str, Any] | None, model: type[BaseModel] | None = None) -> str:
    loc = _loc([*prefix, *err["loc"]])
    got = err.get("input")
    t = err["type"]
    if t == "extra_forbidden":
        key = err["loc"][-1]
        allowed = sorted(fields or {})
        hint = difflib.get_close_matches(str(key), allowed, n=1)
        msg = f"{loc}: unknown key {key!r}; allowed keys: {', '.join(allowed)}"
        return msg + (f" (did you mean {hint[0]!r}?)" if hint else "")
    if t == "missing":
        return f"{loc}: required key is missing"
    if t in ("literal_error", "enum"):
        expected = (err.get("ctx") or {}).get("expected", "")
        return f"{loc}: expected one of {expected}, got {json.dumps(got, default=str)}"
    words = _constraint_words(err)
    if words is None and t in _TYPE_WORDS:
        words = _TYPE_WORDS[t] + (_bounds(model, err["loc"]) if t.startswith(("int", "float")) else "")
    if words is not None:
        if t.startswith(("greater", "less")):
            info = _field_names(model, err["loc"]).get(err["loc"][-1]) if model is not None and err["loc"] else None
            is_int = getattr(info, "annotation", None) is int
            words = words.replace("a number", "an integer" if is_int else "a number")
        return f"{loc}: expected {words}, got {json.dumps(got, default=str)}"
    return f"{loc}: {err['msg']}, got {json.dumps(got, default=str)}"


def _field_names(model: type[BaseModel], loc: tuple) -> dict[str, Any]:
    """Allowed keys at the location of an 'extra_forbidden' error (for the message)."""
    cur: Any = model
    for part in loc[:-1]:
        if isinstance(part, str) and cur is not None and part not in getattr(cur, "model_fields", {}):
            continue  # e.g. the union tag pydantic puts in the location
        if isinstance(part, int) or cur is None:
            continue
        f = getattr(cur, "model_fields", {}).get(part)
        ann = getattr(f, "annotation", None) if f else None
        cur = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return dict(getattr(cur, "model_fields", {})) if cur is not None else {}


def _is_union_tag(part) -> bool:
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "bool", "dict", "list"))


def _errors(exc: ValidationError, model: type[BaseModel], prefix: list) -> list[str]:
    out: list[str] = []
    unions: dict[tuple, list[dict]] = {}
    for err in exc.errors():
        loc = tuple(err["loc"])
        cut = next((i for i, part in enumerate(loc) if _is_union_tag(part)), None)
        if cut is not None:  # one error per union member: merge them into one message
            unions.setdefault(loc[:cut], []).append(err)
            continue
        fields = _field_names(model, loc) if err["type"] == "extra_forbidden" else None
        out.append(_format_error(err, prefix, fields, model))
    for loc, errs in unions.items():
        words = []
        for e in errs:
            if e["type"] in ("literal_error", "enum"):
                words.append("one of " + (e.get("ctx") or {}).get("expected", ""))
            else:
                words.append(_TYPE_WORDS.get(e["type"], e["msg"]))
        got = json.dumps(errs[0].get("input"), default=str)
        out.append(f"{_loc([*prefix, *loc])}: expected {' or '.join(dict.fromkeys(words))}, got {got}")
    return out


# -- parsing ----------------------------------------------------------------------------------------
def parse_stage(entry: Any, index: int) -> StageSpec:
    """Validate one ``{name: {params}}`` stage entry."""
    where = f"stages[{index}]"
    if isinstance(entry, str):
        entry = {entry: {}}
    if not isinstance(entry, dict) or len(entry) != 1:
        raise ConfigError(f"{where}: expected a mapping with one key, the stage name (e.g. '- text_quality: {{min_words: 2}}'), got {json.dumps(entry, default=str)}")
    (name, params), = entry.items()
    reg = registry()
    if name not in reg:
        hint = difflib.get_close_matches(str(name), list(reg), n=1)
        raise ConfigError(
            f"{where}: unknown stage {name!r}; registered stages: {', '.join(reg)}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
        )
    cls = reg[name]
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ConfigError(f"{where}.{name}: expected a mapping of parameters, got {json.dumps(params, default=str)}")
    try:
        p = cls.Params.model_validate(params)
    except ValidationError as exc:
        raise ConfigError(_errors(exc, cls.Params, [f"stages[{index}]", name])) from None
    if isinstance(p.action, dict):
        allowed = set(cls.flags) | {"default"}
        bad = sorted(set(p.action) - allowed)
        if bad:
            raise ConfigError(f"{where}.{name}.action: unknown flag {bad[0]!r}; this stage's flags: {', '.join(cls.flags)} (and 'default')")
    return StageSpec(index=index, name=name, params=p)


def parse_pipeline(data: Any, source_path: str | None = None) -> Pipeline:
    """Validate a loaded YAML document into a :class:`Pipeline`; raises :class:`ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError(f"(top level): expected a mapping with keys name, input, stages, got {type(data).__name__}")
    try:
        cfg = PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_errors(exc, PipelineConfig, [])) from None
    errors: list[str] = []
    specs: list[StageSpec] = []
    for i, entry in enumerate(cfg.stages):
        try:
            specs.append(parse_stage(entry, i))
        except ConfigError as exc:
            errors.extend(exc.messages)
    if errors:
        raise ConfigError(errors)
    return Pipeline(config=cfg, stages=specs, source_path=source_path)


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and validate a pipeline YAML file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such pipeline file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    return parse_pipeline(data, str(p))


def json_schema() -> dict[str, Any]:
    """JSON schema of the pipeline file, with every registered stage's params (for editors)."""
    schema = PipelineConfig.model_json_schema()
    stage_variants = []
    for name, cls in registry().items():
        ps = cls.Params.model_json_schema()
        defs = ps.pop("$defs", {})
        schema.setdefault("$defs", {}).update(defs)
        ps["description"] = cls.describe()
        stage_variants.append(
            {"type": "object", "properties": {name: ps}, "required": [name], "additionalProperties": False}
        )
    schema["properties"]["stages"] = {"type": "array", "items": {"oneOf": stage_variants}}
    schema["title"] = "curate pipeline"
    return schema
