"""Mixed tasks: regression metrics, grouped AUC, empty binary labels, standardised targets."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, r2_score, roc_auc_score

import mmoe
from mmoe.config import parse_config
from mmoe.data.preprocessor import Preprocessor
from mmoe.data.tables import read_table, write_table
from mmoe.errors import ConfigError
from mmoe.experiments.mixed_tasks import make_click_watch
from mmoe.specs import FeaturesConfig, TaskSpec
from mmoe.training.metrics import grouped_auc, regression_metrics, task_metrics


def test_mae_and_r2_known_values_and_sklearn():
    y = np.array([3.0, -0.5, 2.0, 7.0])
    p = np.array([2.5, 0.0, 2.0, 8.0])
    m = regression_metrics(y, p)
    # sklearn's documented example: MAE 0.5, R² 0.9486...
    assert m["mae"] == pytest.approx(0.5)
    assert m["r2"] == pytest.approx(0.948608137, rel=1e-8)
    assert m["mae"] == pytest.approx(mean_absolute_error(y, p))
    assert m["r2"] == pytest.approx(r2_score(y, p))
    assert m["mse"] == pytest.approx(0.375) and m["rmse"] == pytest.approx(0.375**0.5)
    assert np.isnan(regression_metrics(np.ones(3), np.zeros(3))["r2"])  # constant labels


def test_grouped_auc_known_value_skips_one_class_groups():
    labels = np.array([1, 0, 0, 1, 0, 1, 1, 1, 0])
    scores = np.array([0.9, 0.1, 0.5, 0.4, 0.4, 0.2, 0.3, 0.8, 0.8])
    groups = np.array(["u1", "u1", "u1", "u2", "u2", "u2", "u3", "u3", "u4"])
    # u1: positive above both negatives → 1. u2: positive 0.4 ties negative 0.4 (½), positive
    # 0.2 below it (0) → ¼. u3 (only positives) and u4 (only a negative) are skipped.
    # Weighted by rows: (3·1 + 3·0.25) / 6 = 0.625.
    value, counted = grouped_auc(labels, scores, groups)
    assert (value, counted) == (pytest.approx(0.625), 2)
    by_group = {g: roc_auc_score(labels[groups == g], scores[groups == g]) for g in ("u1", "u2")}
    assert value == pytest.approx((3 * by_group["u1"] + 3 * by_group["u2"]) / 6)
    nan, none = grouped_auc(np.ones(3), np.zeros(3), np.arange(3))
    assert np.isnan(nan) and none == 0


def test_task_metrics_add_gauc_with_groups():
    tasks = [TaskSpec(name="click", column="c", type="binary")]
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(200, 1))
    labels = (rng.random((200, 1)) < 0.4).astype(np.float32)
    mask = np.ones((200, 1), dtype=bool)
    groups = rng.integers(0, 10, 200)
    m = task_metrics(logits, labels, mask, tasks, groups)["click"]
    aucs = [roc_auc_score(labels[groups == g, 0], logits[groups == g, 0]) for g in range(10)]
    assert m["gauc"] == pytest.approx(np.average(aucs, weights=np.bincount(groups)))
    assert m["gauc_groups"] == 10
    assert "gauc" not in task_metrics(logits, labels, mask, tasks)["click"]


def test_empty_binary_label_cell_is_a_missing_label(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("x,outcome,clicked\n1,bought,1\n2,,\n3,viewed,0\n4, ,1\n")
    table = read_table(path)
    tasks = [
        TaskSpec(name="buy", column="outcome", type="binary", positive=["bought"],
                 negative=["viewed"]),
        TaskSpec(name="click", column="clicked", type="binary"),
    ]  # fmt: skip
    batch = Preprocessor(FeaturesConfig(numeric=["x"]), tasks).fit(table).transform(table)
    assert batch.label_mask.tolist() == [[True, True], [False, False], [True, True], [False, True]]
    assert batch.labels[:, 0].tolist() == [1, 0, 0, 0]


def test_regression_target_is_standardised_and_predicted_in_its_unit(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=600)
    df = pd.DataFrame({"x": x, "seconds": 300 + 120 * x + rng.normal(0, 5, 600), "y": x > 0})
    config = {
        "data": {"source": "table", "train": str(tmp_path / "t.csv")},
        "features": {"numeric": ["x"]},
        "tasks": [
            {"name": "watch", "column": "seconds", "type": "regression"},
            {"name": "click", "column": "y", "type": "binary"},
        ],
        "model": {"name": "mmoe", "num_experts": 2, "expert_hidden": [8], "tower_hidden": [4]},
        "training": {"epochs": 20, "batch_size": 64, "learning_rate": 0.02, "patience": None},
    }
    df.to_csv(tmp_path / "t.csv", index=False)
    run = mmoe.train(config, out_dir=tmp_path / "run", progress=False)
    stored = json.loads((tmp_path / "run" / "preprocessor.json").read_text())["target_stats"]
    train_rows = Preprocessor.load(tmp_path / "run" / "preprocessor.json")
    assert set(stored) == {"watch"}  # binary tasks are never standardised
    assert 250 < stored["watch"]["mean"] < 350 and 90 < stored["watch"]["std"] < 150
    trained = mmoe.load(tmp_path / "run")
    predicted = trained.predict(df)["watch"].to_numpy()
    raw = trained.predict_logits(df)[:, 0]  # standard deviations of the target
    s = train_rows.target_stats_["watch"]
    assert predicted == pytest.approx(raw * s["std"] + s["mean"])
    assert abs(predicted.mean() - df["seconds"].mean()) < 10  # seconds, not z-scores
    metrics = trained.evaluate(df)["watch"]
    assert metrics["mae"] == pytest.approx(np.abs(predicted - df["seconds"]).mean(), rel=1e-4)
    assert metrics["r2"] > 0.9
    assert run.metrics["valid"]["watch"]["rmse"] < 30  # in seconds (the noise std is 5)

    # standardize: false trains on the raw values and stores no statistics.
    config["tasks"][0]["standardize"] = False
    raw_run = mmoe.train(config, progress=False, overrides=["training.epochs=1"])
    assert raw_run.model.preprocessor.target_stats_ == {}


def test_group_by_reports_gauc_and_is_required_for_monitoring_it(tmp_path):
    train, valid, test = make_click_watch((3000, 600, 600), seed=0)
    paths = {}
    for name, table in (("train", train), ("valid", valid), ("test", test)):
        paths[name] = str(tmp_path / f"{name}.parquet")
        write_table(table, paths[name])
    config = {
        "data": {"source": "table", **paths},
        "features": {"categorical": ["user_id", "item_id", "device"], "numeric": ["x0", "x1"]},
        "tasks": [
            {"name": "click", "column": "click", "type": "binary"},
            {"name": "watch", "column": "watch_seconds", "type": "regression"},
        ],
        "model": {"name": "mmoe", "num_experts": 2, "expert_hidden": [8], "tower_hidden": [4]},
        "training": {"epochs": 3, "batch_size": 128, "learning_rate": 0.01},
        "metrics": {"group_by": "user_id"},
    }
    run = mmoe.train(config, progress=False)
    click = run.metrics["test"]["click"]
    assert 0 < click["gauc_groups"] <= 500 and 0.5 < click["gauc"] < 1
    assert click["auc"] > 0.7  # the click task learns next to raw watch seconds
    assert "gauc" in run.history[-1]["valid"]["click"]
    config["training"]["monitor_metric"] = "gauc"
    del config["metrics"]
    with pytest.raises(ConfigError, match="gauc needs metrics.group_by"):
        parse_config(config)
