"""The trainer's settings and outputs: optimizers, schedules, devices, stdout kept for results."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import mmoe
from mmoe.errors import ConfigError
from mmoe.training.schedule import lr_factor
from tests.test_cli import assert_one_line_error, cli
from tests.test_models import synthetic_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "torch_adam"])
def test_each_optimizer_trains_and_is_recorded(tmp_path, optimizer):
    config = synthetic_config("mmoe", epochs=3, optimizer=optimizer, weight_decay=1e-4)
    run = mmoe.train(config, out_dir=tmp_path / "run", progress=False)
    history = run.history
    assert history[-1]["train_loss"]["y1"] < history[0]["train_loss"]["y1"]
    saved = json.loads((tmp_path / "run/config.json").read_text())
    assert saved["training"]["optimizer"] == optimizer
    assert saved["training"]["lr_schedule"] == "constant"


def test_adam_and_torch_adam_agree():
    """The fused kernel and torch.optim.Adam take the same steps (to float tolerance)."""
    a = mmoe.train(synthetic_config("omoe", epochs=2, optimizer="adam"), progress=False)
    b = mmoe.train(synthetic_config("omoe", epochs=2, optimizer="torch_adam"), progress=False)
    for (name, x), (_, y) in zip(
        a.model.model.state_dict().items(), b.model.model.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(x, y, rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_schedule_sets_the_learning_rate_of_every_step(schedule):
    config = synthetic_config(
        "mmoe", epochs=2, lr_schedule=schedule, warmup_steps=10, eval_every_steps=5,
        patience=None, learning_rate=0.01,
    )  # fmt: skip
    run = mmoe.train(config, progress=False)
    total = 2 * 47
    for record in run.history:
        # The rate shown is the one the record's last step used (step index record.step - 1).
        expected = 0.01 * lr_factor(record["step"] - 1, total, schedule, 10)
        assert math.isclose(record["learning_rate"], expected, rel_tol=1e-12)
    rates = [r["learning_rate"] for r in run.history]
    assert rates[0] < rates[1]  # warm-up ramps up
    assert rates[-1] < 0.01 * 0.1  # decayed by the end


def test_device_cuda_without_a_gpu_is_one_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match="training.device is cuda but torch sees no CUDA"):
        mmoe.train(synthetic_config("mmoe", epochs=1, device="cuda"), progress=False)
    run = mmoe.train(synthetic_config("mmoe", epochs=1, device="auto"), progress=False)
    assert run.metrics["device"] == "cpu"


def test_unknown_optimizer_or_schedule_is_a_config_error():
    with pytest.raises(ConfigError, match="training.optimizer"):
        mmoe.train(synthetic_config("mmoe", optimizer="sgd"), progress=False)
    with pytest.raises(ConfigError, match="training.lr_schedule"):
        mmoe.train(synthetic_config("mmoe", lr_schedule="step"), progress=False)


# ---- stdout holds only the result ---------------------------------------------------------------


@pytest.mark.parametrize("quiet", [False, True])
def test_train_json_is_valid_json_with_and_without_quiet(tmp_path, quiet):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(synthetic_config("mmoe", epochs=2, eval_every_steps=20)))
    command = [sys.executable, "-m", "mmoe", "train", str(config), "--out", str(tmp_path / "r"),
               "--json", *(["-q"] if quiet else [])]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    metrics = json.loads(done.stdout)
    assert metrics["run_dir"] == str(tmp_path / "r") and set(metrics["test"]) == {"y1", "y2"}
    if quiet:
        assert done.stderr == ""
    else:  # progress and one line per evaluation went to stderr
        assert sum("train loss:" in line for line in done.stderr.splitlines()) == 5


def test_evaluate_json_writes_null_for_an_undefined_auc(tmp_path, census_table, capsys):
    """All labels of one class: AUC is undefined; JSON has no NaN, so it prints null."""
    raw = yaml.safe_load((ROOT / "configs/census/group1-mmoe.yaml").read_text())
    frame = census_table.slice(0, 1500).to_pandas()
    frame.to_csv(tmp_path / "train.csv", index=False)
    raw["data"] = {"source": "table", "train": str(tmp_path / "train.csv")}
    raw["training"].update(epochs=1)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    code, _, err = cli("train", config, "--out", tmp_path / "run", "-q", capsys=capsys)
    assert code == 0, err
    one_class = frame[frame["income"] != "50000+."].head(100)
    one_class.to_csv(tmp_path / "poor.csv", index=False)
    code, out, _ = cli("evaluate", tmp_path / "run", tmp_path / "poor.csv", "--json",
                       capsys=capsys)  # fmt: skip
    assert code == 0
    metrics = json.loads(out)  # strict: json.loads accepts NaN, so check the text too
    assert "NaN" not in out and metrics["income"]["auc"] is None
    assert metrics["marital"]["auc"] > 0.5
    code, out, _ = cli("evaluate", tmp_path / "run", tmp_path / "poor.csv", capsys=capsys)
    assert code == 0 and "nan" not in out.lower()


def test_resume_without_out_or_checkpoint_is_one_line(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(synthetic_config("mmoe", epochs=1)))
    result = cli("train", config, "--out", tmp_path / "r", "--resume", capsys=capsys)
    assert_one_line_error(result, "no checkpoint to resume", "without --resume")
