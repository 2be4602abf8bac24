import json

import pytest
import yaml
from click.testing import CliRunner

from curate.cli import main
from curate.config import json_schema, load_pipeline, parse_pipeline
from curate.errors import ConfigError

BASE = {"name": "t", "input": {"format": "coco", "path": "examples/coco"}}


def _errors(doc) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_pipeline(doc)
    return exc.value.messages


def test_valid_pipeline_fills_defaults():
    p = parse_pipeline({**BASE, "stages": [{"image_quality": {"min_side": 64}}, "text_quality"]})
    assert [s.name for s in p.stages] == ["image_quality", "text_quality"]
    assert p.stages[0].params.min_side == 64
    assert p.stages[1].params.action == "review"
    assert p.stages[1].dirname == "01-text_quality"
    assert p.config.output_dir().as_posix() == "runs/t"


def test_bad_value_names_path_value_and_bound():
    msgs = _errors({**BASE, "stages": [{"text_quality": {}}, {"image_quality": {"min_side": "big"}}]})
    assert msgs == ['stages[1].image_quality.min_side: expected an integer >= 1, got "big"']


def test_unknown_key_lists_allowed_and_suggests():
    (msg,) = _errors({**BASE, "stages": [{"image_quality": {"min_sid": 3}}]})
    assert msg.startswith("stages[0].image_quality.min_sid: unknown key 'min_sid'; allowed keys: action,")
    assert "did you mean 'min_side'" in msg


def test_unknown_stage_lists_registered():
    (msg,) = _errors({**BASE, "stages": [{"text_qualty": {}}]})
    assert "unknown stage 'text_qualty'" in msg and "text_quality" in msg


def test_bad_action_and_action_map():
    (msg,) = _errors({**BASE, "stages": [{"text_quality": {"action": "delete"}}]})
    assert msg.startswith("stages[0].text_quality.action: expected one of 'keep', 'review' or 'drop'")
    (msg,) = _errors({**BASE, "stages": [{"image_quality": {"action": {"blurr": "drop"}}}]})
    assert "unknown flag 'blurr'" in msg and "blurry" in msg
    p = parse_pipeline({**BASE, "stages": [{"image_quality": {"action": {"undecodable": "drop", "default": "keep"}}}]})
    assert p.stages[0].params.action_for("undecodable") == "drop"
    assert p.stages[0].params.action_for("too_dark") == "keep"
    assert p.stages[0].params.action_for(None) is None


def test_input_errors():
    (msg,) = _errors({"name": "t", "input": {"format": "tiff", "path": "x"}})
    assert msg.startswith("input.format: expected one of 'imagefolder', 'captions'")
    (msg,) = _errors({"name": "t", "input": {"format": "csv"}})
    assert msg == "input.path: required key is missing"


def test_yaml_syntax_error(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_pipeline(p)


def test_validate_cli_exit_codes(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({**BASE, "stages": [{"text_quality": {}}]}))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**BASE, "stages": [{"image_quality": {"min_side": "big"}}]}))
    r = CliRunner().invoke(main, ["validate", str(good)])
    assert r.exit_code == 0 and "OK (1 stage: text_quality)" in r.output
    r = CliRunner().invoke(main, ["validate", str(bad)])
    assert r.exit_code == 2
    assert 'stages[0].image_quality.min_side: expected an integer >= 1, got "big"' in r.output
    assert "Traceback" not in r.output


def test_schema_and_stages_commands():
    schema = json_schema()
    variants = schema["properties"]["stages"]["items"]["oneOf"]
    names = {next(iter(v["properties"])) for v in variants}
    assert {"image_quality", "text_quality"} <= names
    r = CliRunner().invoke(main, ["schema"])
    assert r.exit_code == 0 and json.loads(r.output)["title"] == "curate pipeline"
    r = CliRunner().invoke(main, ["stages"])
    assert r.exit_code == 0 and "min_side = 32" in r.output and "flags:" in r.output
    r = CliRunner().invoke(main, ["stages", "nope"])
    assert r.exit_code == 1 and "no stage 'nope'" in r.output
