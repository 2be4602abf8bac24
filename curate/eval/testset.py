"""The test set of ``curate eval``: an input read like a pipeline's input, or a stratified hold-out.

``--test SPEC`` is read with the project's own readers (:mod:`curate.readers`) and input config model
(:class:`curate.config.InputConfig`), so a test set can be anything a pipeline can ingest:

* a folder or ``.zip`` of class sub-folders (``imagefolder``), a CSV / JSONL / Parquet manifest, a Hugging
  Face dataset saved with ``save_to_disk`` (``hf``): the format is guessed from the path, or given with
  ``--test-format``;
* a YAML file holding an ``input:`` mapping exactly like a pipeline's (or the mapping itself).

Where the test set has the run's format, the run's ``input.columns`` / ``input.root`` are the defaults (a test
manifest usually has the training manifest's columns). Every test item needs a trusted label.

``--test-split FRACTION`` instead holds out a stratified fraction of the run's own items (labels the user
vouches for); they are left out of every training arm.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import yaml
from pydantic import ValidationError

from curate.errors import CurateError

log = logging.getLogger(__name__)

_SUFFIX_FORMATS = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet",
                   ".zip": "imagefolder", ".tar": "webdataset"}


@dataclass
class TestSet:
    """The test items: their records (``id``, ``source``, ``image``, ``text``, ``label``, ``meta``)."""

    records: pa.Table
    description: dict[str, Any] = field(default_factory=dict)
    #: With ``--test-split``: the rows of the run's records that are the test set (else None).
    holdout_rows: np.ndarray | None = None

    @property
    def labels(self) -> list[str]:
        return self.records.column("label").to_pylist()


def guess_format(path: Path) -> str:
    """The input format of a test path (``imagefolder`` for a folder, ``hf`` for a saved dataset)."""
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            return "hf"
        return "imagefolder"
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CurateError(f"--test: cannot tell the format of {path} from its name; pass --test-format "
                          "(imagefolder, csv, jsonl, parquet, webdataset, hf) or a YAML file with an input: mapping")
    return fmt


def parse_columns(value: str | None) -> dict[str, str]:
    """``image=file_name,label=cls`` -> ``{"image": "file_name", "label": "cls"}``."""
    if not value:
        return {}
    out = {}
    for part in value.split(","):
        if "=" not in part:
            raise CurateError(f"--test-columns: expected FIELD=COLUMN pairs separated by commas, got {part!r}")
        k, v = part.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def test_input_config(spec: str, *, fmt: str | None = None, columns: dict[str, str] | None = None,
                      root: str | None = None, run_input: dict[str, Any] | None = None):
    """The :class:`~curate.config.InputConfig` of ``--test SPEC``.

    ``run_input`` is the run's resolved ``input`` config: its ``columns`` and ``root`` are used when the
    test set has the same format and none are given.
    """
    from curate.config import InputConfig, _errors

    path = Path(spec).expanduser()
    if not path.exists():
        raise CurateError(f"--test: {spec} does not exist")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise CurateError(f"--test: {path} is not valid YAML: {exc}") from None
        data = doc.get("input", doc) if isinstance(doc, dict) else doc
        if not isinstance(data, dict):
            raise CurateError(f"--test: {path} must hold an input mapping (format, path, columns, ...)")
        data = dict(data)
        p = Path(str(data.get("path", "")))
        if data.get("path") and not p.is_absolute():  # relative to the YAML file, like a pipeline's input
            data["path"] = str((path.parent / p))
    else:
        data = {"format": fmt or guess_format(path), "path": str(path)}
        run_input = run_input or {}
        same = run_input.get("format") == data["format"]
        if columns:
            data["columns"] = columns
        elif same and run_input.get("columns"):
            data["columns"] = dict(run_input["columns"])
        if root:
            data["root"] = root
        elif same and run_input.get("root") and data["format"] in ("csv", "jsonl", "parquet"):
            data["root"] = run_input["root"]
    try:
        return InputConfig.model_validate(data)
    except ValidationError as exc:
        raise CurateError("--test: " + "; ".join(_errors(exc, InputConfig, ["test"]))) from None


def read_test_set(cfg, *, quiet: bool = False) -> TestSet:
    """Read every item of the test input into one record table (unreadable items are counted, not kept)."""
    import sys

    from tqdm.auto import tqdm

    from curate.readers import build_shard, make_reader

    reader = make_reader(cfg)
    tables, quarantined = [], {}
    with tqdm(desc="read test set", unit="item", file=sys.stderr, disable=quiet) as bar:
        for task in reader.tasks():
            result = build_shard(reader.read(task), max_pixels=cfg.max_image_pixels)
            tables.append(result.records)
            for reason in result.quarantine.column("reason").to_pylist():
                quarantined[reason] = quarantined.get(reason, 0) + 1
            bar.update(result.records.num_rows + result.quarantine.num_rows)
    if not tables or sum(t.num_rows for t in tables) == 0:
        raise CurateError(f"--test: no readable items in {cfg.path}"
                          + (f" ({sum(quarantined.values())} unreadable: {quarantined})" if quarantined else ""))
    records = pa.concat_tables(tables)
    labels = records.column("label")
    if labels.null_count:
        raise CurateError(f"--test: {labels.null_count:,} of {records.num_rows:,} test items have no label; eval needs a "
                          "trusted label for every test item (class sub-folders for an image folder, or map the "
                          "label column with --test-columns label=COLUMN)")
    desc = {"kind": "input", "format": cfg.format, "path": str(cfg.path), "items": records.num_rows,
            "unreadable": sum(quarantined.values()), "unreadable_reasons": quarantined}
    if cfg.columns:
        desc["columns"] = dict(cfg.columns)
    return TestSet(records=records, description=desc)


def stratified_holdout(labels: list[str | None], fraction: float, *, seed: int = 0) -> np.ndarray:
    """Row indices of a stratified hold-out of ``fraction`` of the labelled rows (every class keeps at
    least one training row; classes with a single row stay in training)."""
    if not 0.0 < fraction < 1.0:
        raise CurateError(f"--test-split: expected a fraction between 0 and 1 (e.g. 0.2), got {fraction}")
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        if lab is not None:
            by_class.setdefault(lab, []).append(i)
    out = []
    for lab in sorted(by_class):
        rows = np.array(by_class[lab])
        k = int(round(fraction * len(rows)))
        k = min(k, len(rows) - 1)
        if k > 0:
            out.append(rng.choice(rows, size=k, replace=False))
    if not out:
        raise CurateError(f"--test-split {fraction}: too few labelled items to hold any out")
    return np.sort(np.concatenate(out))


def holdout_test_set(records: pa.Table, fraction: float, *, seed: int = 0) -> TestSet:
    """The ``--test-split`` test set: a stratified fraction of the run's records."""
    rows = stratified_holdout(records.column("label").to_pylist(), fraction, seed=seed)
    desc = {"kind": "split", "fraction": fraction, "seed": seed, "items": int(len(rows)),
            "note": "held out from the run's own items; their given labels are trusted"}
    return TestSet(records=records.take(pa.array(rows)), description=desc, holdout_rows=rows)
