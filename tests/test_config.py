"""Run configs: YAML loading, --set overrides, and one-line errors for every kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mmoe.config import RunConfig, apply_override, load_config, parse_config
from mmoe.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "configs").rglob("*.yaml"))


def base() -> dict:
    return {
        "data": {"source": "table", "train": "train.csv"},
        "features": {"categorical": ["city"], "numeric": ["age"]},
        "tasks": [{"name": "click", "column": "clicked", "type": "binary"}],
        "model": {"name": "mmoe", "num_experts": 4},
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    config = load_config(path)
    assert isinstance(config, RunConfig)
    assert config.monitor() is config.tasks[0]


@pytest.mark.parametrize("group", [1, 2])
def test_census_configs_define_the_paper_tasks_with_the_generic_spec(group):
    config = load_config(ROOT / f"configs/census/group{group}-mmoe.yaml")
    names = [t.name for t in config.tasks]
    assert names == (["income", "marital"] if group == 1 else ["education", "marital"])
    inputs = set(config.features.column_names)
    assert not inputs & {"education", "marital stat", "instance weight"}
    assert ("income" in inputs) == (group == 2)


def test_overrides_reach_nested_keys_and_lists():
    config = parse_config(
        base(), ["model.num_experts=6", "model.expert_hidden=[32, 8]", "tasks.0.weight=2",
                 "training.patience=null", "name=trial"]
    )  # fmt: skip
    assert config.model.num_experts == 6 and config.model.expert_hidden == [32, 8]
    assert config.tasks[0].weight == 2.0 and config.training.patience is None
    assert config.name == "trial"


def test_override_can_switch_architecture():
    raw = base()
    raw["model"] = {"name": "shared_bottom"}
    assert parse_config(raw, ["model.bottom_hidden=[64]"]).model.bottom_hidden == [64]


def test_model_defaults_to_mmoe_and_synthetic_brings_features_and_tasks():
    config = parse_config({"data": {"source": "synthetic", "num_features": 5}})
    assert config.model.name == "mmoe"
    assert [f.name for f in config.features.numeric] == ["x0", "x1", "x2", "x3", "x4"]
    assert [t.type for t in config.tasks] == ["regression", "regression"]


def test_json_round_trip():
    config = parse_config(base())
    assert parse_config(yaml.safe_load(config.to_json())) == config


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (["model.num_expert=4"], r"model\.num_expert: unknown key \(did you mean 'num_experts'"),
        (["training.epoch=3"], r"training\.epoch: unknown key \(did you mean 'epochs'\?\)"),
        (["tasks.0.positve=[1]"], r"tasks\.0\.positve: unknown key \(did you mean 'positive'\?\)"),
        (["model.num_experts=many"], r"model\.num_experts: Input should be a valid integer"),
        (["model.name=moe"], r"model\.name: 'moe' is not one of shared_bottom, omoe, mmoe"),
        (["data.source=sql"], r"data\.source: 'sql' is not one of table, parquet_dataset, cen"),
        (["tasks.0.type=ranking"], r"tasks\.0\.type: Input should be 'binary' or 'regression'"),
        (["tasks.0.column=age"], r"column 'age' is both a feature and the label of task 'click'"),
        (["training.monitor_task=buy"], r"monitor_task 'buy' is not a task \(click\)"),
        (["training.monitor_metric=rmse"], r"monitor_metric 'rmse' does not apply to a binary"),
        (["features.numeric=[city]"], r"feature column listed more than once: city"),
        (["tasks.0.threshold=3", "tasks.0.positive=[1]"], r"either positive or threshold"),
        (["training.learning_rate=-1"], r"training\.learning_rate: Input should be greater than 0"),
    ],
)  # fmt: skip
def test_config_mistakes_are_one_line_errors(edit, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_config(base(), edit)
    assert "\n" not in str(info.value)


def test_missing_sections_are_named():
    raw = base()
    del raw["tasks"]
    with pytest.raises(ConfigError, match="tasks: required key is missing"):
        parse_config(raw)


def test_yaml_problems(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  source: table\n  train: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: invalid YAML at line \d"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(scalar)


@pytest.mark.parametrize("item", ["model.num_experts", "=4", "tasks.7.weight=1"])
def test_malformed_overrides(item):
    with pytest.raises(ConfigError, match="--set"):
        apply_override(base(), item)
