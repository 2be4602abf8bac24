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
import os
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from curate.errors import ConfigError
from curate.readers.limits import (
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_MAX_TEXT_CHARS,
    DEFAULT_QUARANTINE_MAX_BYTES,
)
from curate.stages.base import Stage, StageParams, get_stage_class, registry



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
    max_image_pixels: int = Field(DEFAULT_MAX_IMAGE_PIXELS, ge=1,
                                  description="larger images (width x height) are quarantined as decompression_bomb")
    max_file_bytes: int = Field(DEFAULT_MAX_FILE_BYTES, ge=1,
                                description="larger item files (image, sidecar, archive member) are quarantined as file_too_large")
    max_text_chars: int = Field(DEFAULT_MAX_TEXT_CHARS, ge=1,
                                description="longer captions or documents are quarantined as text_too_long")
    max_line_bytes: int = Field(DEFAULT_MAX_LINE_BYTES, ge=1,
                                description="longer JSONL lines or CSV fields are quarantined as bad_row")
    quarantine_max_bytes: int = Field(DEFAULT_QUARANTINE_MAX_BYTES, ge=0,
                                      description="quarantined items keep their raw bytes up to this size")
    limit: Optional[int] = Field(None, ge=1, description="read at most this many items (for a quick look)")


class PipelineConfig(BaseModel):
    """A whole pipeline file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    input: InputConfig
    output: Optional[str] = Field(None, description="run directory (default: runs/<name> in the current directory); "
                                  "relative paths here and in input.path/root are relative to the pipeline file's folder")
    executor: Literal["local", "ray"] = "local"
    address: Optional[str] = Field(None, description="ray: cluster address (default: start a local Ray)")
    workers: int = Field(2, ge=1, description="worker processes for the local executor")
    cache: Optional[str] = Field(None, description="folder for model caches (embeddings by model and item id, "
                                 "ONNX graphs) that several runs over the same data share (default: RUN/cache)")
    stages: list[Any] = Field(default_factory=list, description="stages in order, each {name: {params}}")

    def output_dir(self):
        """The run directory: a :class:`pathlib.Path`, or a :class:`curate.storage.RemotePath` for
        ``s3://...`` and other object-storage URLs."""
        from curate.storage import location

        return location(self.output or f"runs/{self.name}")


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


#: More values than this after expanding YAML aliases is refused (billion-laughs style documents).
MAX_YAML_VALUES = 100_000


_YAML11_WORDS = frozenset({"on", "off", "yes", "no", "y", "n"})


def _where(path: list) -> str:
    return _loc(path) if path else "(top level)"


def _check_yaml_nodes(root: yaml.Node, name: str) -> None:
    """Refuse duplicate keys, non-string keys and alias expansion past :data:`MAX_YAML_VALUES`."""
    errors: list[str] = []
    sizes: dict[int, int] = {}
    seen: set[int] = set()

    def size(node: yaml.Node, depth: int = 0) -> int:  # values after expanding aliases (memoised per node)
        got = sizes.get(id(node))
        if got is not None:
            return got
        sizes[id(node)] = 1  # a recursive alias counts once (and is refused by pydantic later)
        if isinstance(node, yaml.MappingNode):
            n = 1 + sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            n = 1 + sum(size(v, depth + 1) for v in node.value)
        else:
            n = 1
        sizes[id(node)] = n
        return n

    def walk(node: yaml.Node, path: list) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, [*path, i])
        elif isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for k, v in node.value:
                line = k.start_mark.line + 1
                if k.tag == "tag:yaml.org,2002:merge":
                    walk(v, path)
                    continue
                if (isinstance(k, yaml.ScalarNode) and k.tag == "tag:yaml.org,2002:bool" and k.style is None
                        and k.value.lower() in _YAML11_WORDS):
                    k.tag = "tag:yaml.org,2002:str"  # 'on:' is the key "on" (as in YAML 1.2), not True
                if not (isinstance(k, yaml.ScalarNode) and k.tag == "tag:yaml.org,2002:str"):
                    shown = k.value if isinstance(k, yaml.ScalarNode) else "a " + type(k).__name__.replace("Node", "").lower()
                    kind = k.tag.rsplit(":", 1)[-1]
                    errors.append(f"{name}: line {line}: {_where(path)}: key {shown!r} is not a string (YAML reads it as {kind}); "
                                  f"quote it, e.g. \"{shown}\":")
                    continue
                if k.value in first:
                    errors.append(f"{name}: line {line}: {_where([*path, k.value])}: duplicate key {k.value!r} "
                                  f"(first given at line {first[k.value]}); give each key once")
                else:
                    first[k.value] = line
                walk(v, [*path, k.value])

    walk(root, [])
    if errors:
        raise ConfigError(errors)
    total = size(root)
    if total > MAX_YAML_VALUES:
        raise ConfigError(f"{name}: YAML aliases expand to {total:,} values, over the limit of {MAX_YAML_VALUES:,} "
                          "(a 'billion laughs' document?); write the values out instead of nesting aliases")


def load_yaml(text: str, name: str = "<string>") -> Any:
    """Parse one YAML document strictly (shared by ``curate validate`` and ``curate run``).

    Like ``yaml.safe_load``, but duplicate keys, non-string keys and documents whose aliases expand to
    more than :data:`MAX_YAML_VALUES` values are ConfigErrors naming the key and its line.
    """
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_yaml_nodes(node, name)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{name}: YAML nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def resolve_relative_paths(data: Any, base: Path) -> Any:
    """``input.path``, ``input.root``, ``output`` and ``cache`` made absolute against ``base`` (the pipeline's folder).

    Paths that are absolute, start with ``~`` or name a URL (``s3://``) are left as they are.
    """
    if not isinstance(data, dict):
        return data

    def fix(value: Any) -> Any:
        if not isinstance(value, str) or not value or "://" in value or value.startswith("~") or Path(value).is_absolute():
            return value
        return os.path.normpath(base / value)

    out = dict(data)
    if isinstance(out.get("input"), dict):
        inp = dict(out["input"])
        for key in ("path", "root"):
            if key in inp:
                inp[key] = fix(inp[key])
        out["input"] = inp
    for key in ("output", "cache"):
        if key in out:
            out[key] = fix(out[key])
    return out


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and validate a pipeline YAML file; relative paths in it are relative to its folder."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such pipeline file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    data = load_yaml(text, str(p))
    return parse_pipeline(resolve_relative_paths(data, p.resolve().parent), str(p))


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
