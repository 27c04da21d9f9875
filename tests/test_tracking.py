"""training.log_to: TensorBoard event files for real; MLflow with a file store when installed."""

from __future__ import annotations

import pytest

import mmoe
from mmoe.errors import ConfigError
from tests.test_cli_conventions import make_table
from tests.test_in_memory import CONFIG


def tracked(tmp_path, backends, every=None):
    training = {**CONFIG["training"], "log_to": backends, "log_every_steps": every}
    config = {**CONFIG, "training": training}
    return mmoe.train(config, data={"train": make_table(400, 0)}, out_dir=tmp_path / "run",
                      progress=False)  # fmt: skip


def test_tensorboard_gets_every_evaluation_and_every_n_steps(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tracked(tmp_path, ["tensorboard"], every=2)
    events = EventAccumulator(str(run.run_dir / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"valid/click/auc", "train/buy/loss", "learning_rate"} <= set(tags)
    auc_steps = [e.step for e in events.Scalars("valid/click/auc")]
    assert auc_steps == [r["step"] for r in run.history]
    running = [e.step for e in events.Scalars("train/click/loss_running")]
    assert running == list(range(2, run.metrics["steps"] + 1, 2))


def test_mlflow_file_store(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 prefers a database
    run = tracked(tmp_path, ["mlflow"])
    found = mlflow.search_runs(experiment_ids=["0"], output_format="list")
    assert len(found) == 1
    logged = found[0].data
    assert logged.params["model.num_experts"] == "2"
    assert logged.tags["mmoe.run_dir"] == str(run.run_dir)
    history = mlflow.tracking.MlflowClient().get_metric_history(found[0].info.run_id,
                                                                "valid/click/auc")  # fmt: skip
    assert [m.step for m in history] == [r["step"] for r in run.history]


def test_a_missing_backend_is_a_one_line_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "mlflow" else real(name, *a))  # fmt: skip
    from mmoe.tracking import check_backends

    with pytest.raises(ConfigError, match=r"pip install 'mmoe\[mlflow\]'"):
        check_backends(["mlflow"])
