"""Numeric encodings: known answers on small columns, unknown handling, JSON round trips."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from mmoe.data.encodings import NumericEncoding, fit_encoding, tree_thresholds
from mmoe.data.preprocessor import Preprocessor
from mmoe.errors import ConfigError
from mmoe.specs import FeaturesConfig, NumericFeature, TaskSpec

X = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 2.0, 5.0, np.nan])


def spec(encoding: str, **options) -> NumericFeature:
    return NumericFeature(name="x", encoding=encoding, **options)


def test_values_keep_frequent_values_and_send_rare_unknown_and_missing_to_zero():
    enc = fit_encoding(spec("values", min_frequency=2), X)
    assert enc.values == [0.0, 2.0]  # 1.0 and 5.0 are seen once
    codes, parts = enc.transform(np.array([0.0, 2.0, 1.0, 5.0, 3.0, -1.0, 9.0, np.nan]))
    assert codes.tolist() == [1, 2, 0, 0, 0, 0, 0, 0]
    assert parts is None and enc.cardinality == 3


def test_quantile_bins_edges_and_codes():
    enc = fit_encoding(spec("quantile_bins", bins=4), np.arange(8, dtype=float))
    assert enc.values == [1.75, 3.5, 5.25]
    codes, _ = enc.transform(np.array([-5.0, 1.75, 2.0, 3.5, 6.0, 100.0, np.nan]))
    # 1 + #{edges <= x}; missing → 0; below/above the training range → the end bins.
    assert codes.tolist() == [1, 2, 2, 3, 4, 4, 0]
    assert enc.cardinality == 5


def test_quantile_bins_of_a_zero_inflated_column_drop_duplicate_edges():
    enc = fit_encoding(spec("quantile_bins", bins=4), X)
    assert enc.values == sorted(set(enc.values))
    # Quantiles of the 8 known values 0 0 0 0 1 2 2 5: 0, 0, 0.5, 2, 5 → edges 0, 0.5, 2, 5;
    # the interior ones bound the bins: 3 bins instead of 4.
    assert enc.values == [0.5, 2.0]
    assert enc.transform(np.array([0.0, 1.0, 2.0, 5.0]))[0].tolist() == [1, 2, 3, 3]


def test_tree_bins_split_where_the_label_changes():
    x = np.array([1.0, 2.0, 3.0, 4.0, 10.0, 11.0, 12.0, 13.0, 20.0, 21.0])
    y = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    assert tree_thresholds(x, y, max_leaves=3, min_leaf=1) == [7.0, 16.5]
    assert tree_thresholds(x, y, max_leaves=2, min_leaf=1) in ([7.0], [16.5])
    assert tree_thresholds(x, y, max_leaves=8, min_leaf=1) == [7.0, 16.5]  # pure leaves stop
    # With 5 rows per leaf at least, the only split left is 5 | 5 (between 10 and 11).
    assert tree_thresholds(x, y, max_leaves=3, min_leaf=5) == [10.5]
    enc = fit_encoding(spec("tree_bins", bins=3, min_frequency=1), x, y)
    assert enc.transform(np.array([0.0, 7.0, 15.0, 99.0, np.nan]))[0].tolist() == [1, 2, 2, 3, 0]


def test_tree_bins_ignore_unlabelled_rows():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    y = np.array([0.0, np.nan, 1.0, 1.0])
    enc = fit_encoding(spec("tree_bins", bins=4, min_frequency=1), x, y)
    assert enc.values == [2.0]  # midway between 1 and 3: the unlabelled 2.0 plays no part


def test_piecewise_linear_parts():
    enc = fit_encoding(spec("piecewise_linear", bins=2), np.array([0.0, 1.0, 2.0, 4.0, 4.0]))
    assert enc.values == [0.0, 2.0, 4.0]
    _, parts = enc.transform(np.array([-1.0, 1.0, 3.0, 5.0]))
    assert parts.tolist() == [[0.0, 0.0], [0.5, 0.0], [1.0, 0.5], [1.0, 1.0]]
    assert enc.numeric_width == 3 and enc.cardinality == 0  # raw + 2 parts


@pytest.mark.parametrize("kind", ["values", "quantile_bins", "tree_bins", "piecewise_linear"])
def test_state_round_trips_through_json(kind):
    rng = np.random.default_rng(0)
    x = np.round(rng.exponential(3.0, 500), 1)
    enc = fit_encoding(spec(kind, bins=6, min_frequency=3), x, (x > 2).astype(float))
    back = NumericEncoding.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert back == enc
    new = np.append(rng.exponential(3.0, 50).round(1), np.nan)
    for a, b in zip(enc.transform(new), back.transform(new), strict=True):
        assert (a is None and b is None) or np.array_equal(a, b)
    assert not np.isnan(enc.transform(new, fill=1.0)[1] if kind == "piecewise_linear" else 0).any()


TABLE = pd.DataFrame(
    {
        "city": ["a", "b", "a", "c", "b", "a", "a", "b"],
        "gain": [0.0, 0.0, 0.0, 500.0, 0.0, 500.0, 7.0, None],
        "age": [20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0],
        "y": [0, 0, 0, 1, 0, 1, 1, 0],
    }
)
TASK = TaskSpec(name="y", column="y", type="binary")


def test_preprocessor_layout_spec_and_reload():
    features = FeaturesConfig(
        categorical=["city"],
        numeric=[
            {"name": "gain", "encoding": "values", "min_frequency": 2, "embedding_dim": 3},
            {"name": "age", "encoding": "piecewise_linear", "bins": 2, "keep_raw": False},
        ],
    )
    pre = Preprocessor(features, [TASK]).fit(TABLE)
    batch = pre.transform(TABLE)
    # Embedded columns: city, then gain's values (0.0 → 1, 500.0 → 2, 7.0 and missing → 0).
    assert batch.categorical[:, 1].tolist() == [1, 1, 1, 2, 1, 2, 0, 0]
    # Numeric columns: gain standardised (keep_raw), then age's two parts (no raw age).
    spec_ = pre.input_spec()
    assert spec_.cardinalities == (4, 3) and spec_.embedding_dims == (4, 3)
    assert spec_.num_numeric == batch.numeric.shape[1] == 3
    # Ages 20..90 → edges 20, 55, 90: parts (age - 20) / 35 and (age - 55) / 35, clipped.
    age = TABLE["age"].to_numpy()
    assert np.allclose(batch.numeric[:, 1], np.clip((age - 20) / 35, 0, 1))
    assert np.allclose(batch.numeric[:, 2], np.clip((age - 55) / 35, 0, 1))
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    rebatch = again.transform(TABLE)
    assert torch.equal(batch.categorical, rebatch.categorical)
    assert torch.equal(batch.numeric, rebatch.numeric)
    assert again.input_spec() == spec_


def test_plain_numeric_features_keep_the_previous_state_and_layout():
    features = FeaturesConfig(categorical=["city"], numeric=["gain", "age"])
    pre = Preprocessor(features, [TASK]).fit(TABLE)
    assert "numeric_encodings" not in pre.to_dict()
    assert pre.transform(TABLE).numeric.shape == (8, 2)


def test_tree_task_must_be_a_task_of_the_run():
    features = FeaturesConfig(numeric=[{"name": "age", "encoding": "tree_bins", "tree_task": "z"}])
    with pytest.raises(ConfigError, match="tree_task 'z'"):
        Preprocessor(features, [TASK]).fit(TABLE)
