"""The train pipeline: run directories, history, early stopping, the Python API."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mmoe
from mmoe.errors import ArtifactError, DataError, MmoeError
from tests.test_models import synthetic_config


def test_run_directory_holds_the_documented_files(tmp_path):
    run = mmoe.train(synthetic_config("mmoe", epochs=3), out_dir=tmp_path / "run", progress=False)
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["config.json", "metrics.json", "metrics.jsonl", "model.safetensors",
                     "preprocessor.json", "provenance.json"]  # fmt: skip
    config = json.loads((tmp_path / "run/config.json").read_text())
    assert config["format_version"] == 2 and config["model"]["name"] == "mmoe"
    history = [
        json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    ]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    saved = json.loads((tmp_path / "run/metrics.json").read_text())
    assert saved["test"] == run.metrics["test"]
    assert not (tmp_path / "run.partial").exists()
    # A saved config.json is itself a valid config.
    again = mmoe.train(tmp_path / "run/config.json", progress=False)
    assert again.metrics["test"] == run.metrics["test"]


def test_best_weights_are_kept_and_early_stopping_stops():
    config = synthetic_config("omoe", epochs=40, learning_rate=0.05, patience=2)
    run = mmoe.train(config, progress=False)
    assert run.metrics["stopped_early"]
    best = run.metrics["best"]
    # The kept weights are those of the best evaluation: re-evaluating them reproduces it.
    assert run.metrics["valid"]["y1"]["mse"] == pytest.approx(best["valid"]["y1"]["mse"])
    assert run.metrics["steps"] < 40 * 47


def test_eval_every_steps_and_monitor_choice(tmp_path):
    config = synthetic_config("mmoe", epochs=1, eval_every_steps=10, monitor_task="y2")
    run = mmoe.train(config, out_dir=tmp_path / "run", progress=False)
    assert run.metrics["monitor"] == {"task": "y2", "metric": "mse"}
    assert run.metrics["steps"] == 47  # 3,000 rows in batches of 64
    history = (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in history] == [10, 20, 30, 40, 47]


def test_divergence_is_reported_not_silently_saved(tmp_path):
    config = synthetic_config("mmoe", epochs=2, learning_rate=1e9)
    with pytest.raises(MmoeError, match="diverged.*lower training.learning_rate"):
        mmoe.train(config, out_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()  # never a half-written run directory
    assert (tmp_path / "run.partial").is_dir()  # what was logged stays for inspection


def test_existing_run_directory_is_kept_unless_overwrite(tmp_path):
    config = synthetic_config("mmoe", epochs=1)
    mmoe.train(config, out_dir=tmp_path / "run", progress=False)
    with pytest.raises(ArtifactError, match="already exists; pass another --out or --overwrite"):
        mmoe.train(config, out_dir=tmp_path / "run", progress=False)
    config["training"]["seed"] = 3
    run = mmoe.train(config, out_dir=tmp_path / "run", progress=False, overwrite=True)
    assert json.loads((tmp_path / "run/metrics.json").read_text())["test"] == run.metrics["test"]


def test_python_api_on_real_census_rows(census_config_raw, census_table):
    run = mmoe.train(census_config_raw, progress=False)
    assert set(run.metrics["test"]) == {"income", "marital"}
    assert run.metrics["test"]["marital"]["auc"] > 0.9  # learnable even from 3,000 rows
    frame = census_table.slice(0, 50).to_pandas().drop(columns=["income", "marital stat"])
    predictions = run.predict(frame)
    assert list(predictions.columns) == ["income", "marital"] and len(predictions) == 50
    assert ((predictions > 0) & (predictions < 1)).all().all()
    # Row order is kept: predicting a reversed frame gives the reversed predictions.
    reverse = run.predict(frame.iloc[::-1])
    assert np.array_equal(reverse.to_numpy()[::-1], predictions.to_numpy())
    with pytest.raises(DataError, match="the table lacks 1 feature column: 'sex'"):
        run.predict(frame.drop(columns=["sex"]))
    gates = run.model.gate_weights(frame)
    experts = census_config_raw["model"]["num_experts"]
    assert gates.shape == (50, 2, experts) and np.allclose(gates.sum(-1), 1.0, atol=1e-6)


def test_table_source_with_holdout(tmp_path, census_table):
    from mmoe.data.tables import write_table

    write_table(census_table, tmp_path / "people.parquet")
    config = {
        "data": {"source": "table", "train": str(tmp_path / "people.parquet"),
                 "valid_fraction": 0.2},
        "features": {"categorical": ["sex", "race", "class of worker"], "numeric": ["age"]},
        "tasks": [{"name": "rich", "column": "income", "type": "binary",
                   "positive": ["50000+."]}],
        "model": {"name": "shared_bottom", "bottom_hidden": [8], "tower_hidden": []},
        "training": {"epochs": 2, "batch_size": 256},
    }  # fmt: skip
    run = mmoe.train(config, progress=False)
    assert run.metrics["valid"]["rich"]["rows"] == 600 and "test" not in run.metrics


def test_restore_best_false_keeps_the_last_weights():
    config = synthetic_config("mmoe", epochs=6, learning_rate=0.05, patience=None)
    config["training"]["restore_best"] = False
    run = mmoe.train(config, progress=False)
    last = run.history[-1]["valid"]
    assert run.metrics["best"]["step"] < run.history[-1]["step"]  # the last is not the best
    assert run.metrics["valid"]["y1"]["mse"] == pytest.approx(last["y1"]["mse"])
    assert run.metrics["valid"]["y2"]["mse"] == pytest.approx(last["y2"]["mse"])


def test_training_does_not_import_torch_dynamo():
    """torch.optim's constructors import torch._dynamo (~70 MiB, seconds); fit must not."""
    import subprocess
    import sys

    code = (
        "import sys, mmoe; from tests.test_models import synthetic_config;"
        "mmoe.train(synthetic_config('mmoe', epochs=1), progress=False);"
        "print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
