"""mmoe tune: Optuna over any config on validation data, every trial recorded and rerunnable."""

from __future__ import annotations

import json

import pytest
import yaml

from mmoe.errors import ConfigError
from mmoe.search import Param, parse_param
from tests.test_cli import assert_one_line_error, cli
from tests.test_cli_conventions import make_table


@pytest.mark.parametrize(
    ("text", "param"),
    [
        ("model.num_experts=int:2:16", Param("model.num_experts", "int", 2, 16)),
        ("training.learning_rate=float:1e-4:1e-2:log",
         Param("training.learning_rate", "float", 1e-4, 1e-2, True)),
        ("model.tower_hidden=choice:[[8], [16, 8]]",
         Param("model.tower_hidden", "choice", choices=([8], [16, 8]))),
    ],
)  # fmt: skip
def test_parse_param(text, param):
    assert parse_param(text) == param


@pytest.mark.parametrize("text", ["model.x", "a=int:3", "a=int:5:2", "a=float:0:1:log",
                                  "a=choice:7", "a=grid:1:2"])  # fmt: skip
def test_bad_params(text):
    with pytest.raises(ConfigError, match="--param"):
        parse_param(text)


def test_tune_records_every_trial_with_its_rerun_command(tmp_path, capsys):
    pytest.importorskip("optuna")
    csv = tmp_path / "t.csv"
    make_table(400, 0).to_csv(csv, index=False)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"source": "table", "train": str(csv), "test_fraction": 0.2},
        "features": {"categorical": ["city"], "numeric": ["age"]},
        "tasks": [{"name": "click", "column": "clicked", "type": "binary"}],
        "training": {"epochs": 1, "batch_size": 64},
    }))  # fmt: skip
    out = tmp_path / "search"
    code, stdout, _ = cli(
        "tune", config, "--trials", "3", "--param", "model.num_experts=int:1:4",
        "--param", "training.learning_rate=float:1e-3:1e-1:log",
        "--param", "model.tower_hidden=choice:[[4], [8]]", "--out", out, "-q", capsys=capsys,
    )  # fmt: skip
    assert code == 0 and "best: trial" in stdout
    record = json.loads((out / "trials.json").read_text())
    trials = record["trials"]
    assert [t["index"] for t in trials] == [0, 1, 2]
    for trial in trials:
        assert trial["monitor"] == {"task": "click", "metric": "auc"}
        assert 0 < trial["value"] <= 1 and "test" not in trial
        assert trial["command"].startswith(f"mmoe train {config} --set model.num_experts=")
    best = yaml.safe_load((out / "best.yaml").read_text())
    top = max(trials, key=lambda t: t["value"])
    assert f"model.num_experts={best['model']['num_experts']}" in top["values"]
    result = cli("tune", config, "--param", "model.num_expert=int:1:4", "--out", out,
                 capsys=capsys)  # fmt: skip
    assert_one_line_error(result, "unknown key (did you mean 'num_experts'?)")
