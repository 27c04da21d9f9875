"""The config reference is generated from the code and current; config commands work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from mmoe.config.models import MODEL_CONFIGS
from mmoe.config.reference import config_reference
from tests.test_cli import assert_one_line_error, cli

ROOT = Path(__file__).resolve().parents[1]


def test_docs_config_md_is_current():
    on_disk = (ROOT / "docs" / "config.md").read_text()
    assert on_disk == config_reference(), (
        "docs/config.md is out of date: regenerate it with "
        "`mmoe config reference -o docs/config.md`"
    )


def config_classes() -> list[type[BaseModel]]:
    from mmoe.config import run
    from mmoe.specs import CategoricalFeature, FeaturesConfig, NumericFeature, TaskSpec

    sections = [run.TableSource, run.CensusSource, run.SyntheticSource, run.MemorySource]
    sections += [run.TrainingConfig, run.RunConfig, FeaturesConfig, CategoricalFeature]
    return [*sections, NumericFeature, TaskSpec, *MODEL_CONFIGS.values()]


@pytest.mark.parametrize("cls", config_classes(), ids=lambda c: c.__name__)
def test_every_config_field_has_a_description(cls):
    missing = [name for name, field in cls.model_fields.items() if not field.description]
    assert not missing, f"{cls.__name__}: add Field(description=...) to {missing}"
    text = config_reference()
    for name in cls.model_fields:
        assert f"| `{name}` |" in text


def test_schema_show_validate_list(tmp_path, capsys):
    code, out, _ = cli("config", "schema", capsys=capsys)
    schema = json.loads(out)
    assert code == 0 and "training" in schema["properties"]
    code, out, _ = cli("config", "show", "configs/census/group1-mmoe.yaml",
                       "--set", "model.num_experts=3", capsys=capsys)  # fmt: skip
    shown = yaml.safe_load(out)
    assert code == 0 and shown["model"]["num_experts"] == 3
    assert shown["training"]["restore_best"] is True  # a default the file does not write
    code, out, _ = cli("config", "list", capsys=capsys)
    assert code == 0 and "census/group1-mmoe.yaml" in out
    code, out, _ = cli("config", "validate", "census/group1-mmoe", capsys=capsys)
    assert code == 0 and out.startswith("ok: ")
    csv = tmp_path / "t.csv"
    csv.write_text("a,b\n1,2\n")
    bad = {"data": {"source": "table", "train": str(csv)},
           "features": {"categorical": ["a", "c", "d"]},
           "tasks": [{"name": "y", "column": "y", "type": "binary"}]}  # fmt: skip
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    result = cli("config", "validate", path, capsys=capsys)
    assert_one_line_error(result, "lacks 3 feature/label", "'c'", "'d'", "'y'")
    result = cli("config", "validate", tmp_path / "nope.yaml", capsys=capsys)
    assert_one_line_error(result, "config file not found", "mmoe init")
