"""Training, predicting and evaluating on tables in memory (pandas DataFrames, Arrow tables)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import mmoe
from mmoe.errors import DataError
from tests.test_cli_conventions import make_table

CONFIG = {
    "features": {"categorical": ["city", "user_id"], "numeric": ["age"]},
    "tasks": [
        {"name": "click", "column": "clicked", "type": "binary"},
        {"name": "buy", "column": "bought", "type": "binary", "positive": ["yes"]},
    ],
    "model": {"num_experts": 2},
    "training": {"epochs": 2, "batch_size": 64},
}


def test_train_on_dataframes_then_predict_evaluate_gates():
    train, valid, test = make_table(400, 0), make_table(100, 1), make_table(100, 2)
    run = mmoe.train(CONFIG, data={"train": train, "valid": valid, "test": test}, progress=False)
    assert run.metrics["valid"]["click"]["rows"] == 100 and "test" in run.metrics
    assert run.model.config.data.source == "memory"
    predictions = run.model.predict(test.drop(columns=["clicked", "bought"]))
    assert list(predictions.columns) == ["click", "buy"] and len(predictions) == 100
    metrics = run.model.evaluate(pa.Table.from_pandas(test))
    assert metrics["click"]["auc"] == pytest.approx(run.metrics["test"]["click"]["auc"])
    assert run.model.gate_weights(test).shape == (100, 2, 2)


def test_arrow_tables_and_holdout_and_tables_in_the_config():
    table = pa.Table.from_pandas(make_table(500, 3))
    run = mmoe.train(CONFIG, data={"train": table}, progress=False)
    assert run.metrics["valid"]["click"]["rows"] == 50 and "test" not in run.metrics
    # A DataFrame where a path would go is taken as data too (it used to end in an OSError).
    frame = make_table(500, 3)
    as_data = mmoe.train({**CONFIG, "data": {"source": "table", "train": frame}}, progress=False)
    assert np.allclose(as_data.model.predict(frame), run.model.predict(frame))


def test_bad_data_arguments_are_one_line_errors(tmp_path):
    with pytest.raises(DataError, match="data= takes the keys train"):
        mmoe.train(CONFIG, data={"training": make_table(10, 0)}, progress=False)
    with pytest.raises(DataError, match="expected a pandas DataFrame or pyarrow Table"):
        mmoe.train(CONFIG, data={"train": [1, 2, 3]}, progress=False)
    run = mmoe.train(CONFIG, data={"train": make_table(200, 0)}, out_dir=tmp_path / "r",
                     progress=False)  # fmt: skip
    from mmoe.cli import main  # noqa: F401  (the CLI names the way out for a memory run)
    from mmoe.data.sources import load_splits

    with pytest.raises(DataError, match="trained on tables in memory"):
        load_splits(mmoe.load(run.run_dir).config.data)
