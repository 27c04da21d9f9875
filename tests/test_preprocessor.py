"""The preprocessor against scikit-learn's OrdinalEncoder / StandardScaler, on real census rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OrdinalEncoder, StandardScaler

from mmoe.data.census import CENSUS_NUMERIC
from mmoe.data.preprocessor import Preprocessor
from mmoe.errors import DataError
from mmoe.specs import FeaturesConfig, TaskSpec

CATEGORICAL = ["class of worker", "education", "hispanic origin", "detailed industry recode",
               "migration code-change in msa", "state of previous residence"]  # fmt: skip
INCOME = TaskSpec(name="income", column="income", type="binary", positive=["50000+."])


def fitted(table, min_frequency: int = 1) -> Preprocessor:
    features = FeaturesConfig(
        categorical=CATEGORICAL, numeric=list(CENSUS_NUMERIC), min_frequency=min_frequency
    )
    return Preprocessor(features, [INCOME]).fit(table)


@pytest.mark.parametrize("min_frequency", [1, 20])
def test_categorical_codes_match_ordinal_encoder(census_table, min_frequency):
    fit_part, new_part = census_table.slice(0, 2000), census_table.slice(2000)
    pre = fitted(fit_part, min_frequency)
    codes = pre.transform(new_part).categorical.numpy()
    for j, name in enumerate(CATEGORICAL):
        vocab = pre.vocabularies_[name]
        train_values = pd.Series(fit_part.column(name).to_pylist()).astype("string")
        counts = train_values.value_counts()
        # The documented order: descending frequency, ties by text; rare and missing dropped.
        expected_vocab = sorted(
            [v for v, c in counts.items() if c >= min_frequency], key=lambda v: (-counts[v], v)
        )
        assert vocab == expected_vocab, name
        values = pd.Series(new_part.column(name).to_pylist()).astype("string").fillna("<null>")
        encoder = OrdinalEncoder(
            categories=[vocab], handle_unknown="use_encoded_value", unknown_value=-1
        ).fit(np.array(vocab, dtype=object).reshape(-1, 1))
        oracle = encoder.transform(values.to_numpy(dtype=object).reshape(-1, 1))[:, 0] + 1
        assert np.array_equal(codes[:, j], oracle.astype(np.int64)), name


def test_numeric_matches_imputer_then_standard_scaler(census_table):
    table = census_table.slice(0, 2500)
    # Punch holes so the missing → training mean rule is exercised.
    ages = table.column("age").to_numpy().astype(float)
    ages[::7] = np.nan
    table = table.set_column(table.column_names.index("age"), "age", pa.array(ages))
    pre = fitted(table)
    raw = np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in CENSUS_NUMERIC])
    oracle = StandardScaler().fit_transform(SimpleImputer(strategy="mean").fit_transform(raw))
    got = pre.transform(table).numeric.numpy()
    assert np.allclose(got, oracle, atol=1e-5)


def test_json_round_trip_is_exact(census_table, tmp_path):
    pre = fitted(census_table, min_frequency=3)
    pre.save(tmp_path / "pre.json")
    again = Preprocessor.load(tmp_path / "pre.json")
    assert again.to_dict() == pre.to_dict()
    a, b = pre.transform(census_table), again.transform(census_table)
    assert np.array_equal(a.categorical.numpy(), b.categorical.numpy())
    assert np.array_equal(a.numeric.numpy(), b.numeric.numpy())  # bit-identical floats
    assert json.loads((tmp_path / "pre.json").read_text())["format_version"] == 1


def test_na_is_a_category_and_question_mark_is_missing(census_table):
    pre = fitted(census_table)
    assert "NA" in pre.vocabularies_["hispanic origin"]
    assert "?" not in pre.vocabularies_["migration code-change in msa"]
    batch = pre.transform(census_table)
    msa = census_table.column("migration code-change in msa")
    missing = msa.is_null().to_numpy(zero_copy_only=False)
    assert missing.any()
    assert (batch.categorical[:, CATEGORICAL.index("migration code-change in msa")].numpy()[missing]
            == 0).all()  # fmt: skip


def test_unknown_categories_and_int_vs_text_spellings():
    features = FeaturesConfig(categorical=["zone"], numeric=["x"])
    task = TaskSpec(name="y", column="y", type="binary")
    train = pd.DataFrame({"zone": [1, 2, 2, 3], "x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 1, 0]})
    pre = Preprocessor(features, [task]).fit(train)
    assert pre.vocabularies_["zone"] == ["2", "1", "3"]
    new = pd.DataFrame({"zone": ["2", "9", None], "x": [np.nan, 2.5, 0.0]})
    batch = pre.transform(new)
    assert batch.categorical[:, 0].tolist() == [1, 0, 0]
    assert batch.labels is None  # label column absent: features only
    assert batch.numeric[0, 0].item() == pytest.approx(0.0)  # missing → mean → 0 after scaling


def test_labels_threshold_positive_and_missing_mask():
    df = pd.DataFrame(
        {"r": [1.0, 4.0, None, 5.0], "kind": ["a", "b", None, "a"], "x": [0, 1, 2, 3]}
    )
    tasks = [
        TaskSpec(name="like", column="r", type="binary", threshold=4),
        TaskSpec(name="a", column="kind", type="binary", positive=["a"]),
        TaskSpec(name="rating", column="r", type="regression", standardize=False),
    ]
    batch = Preprocessor(FeaturesConfig(numeric=["x"]), tasks).fit(df).transform(df)
    assert batch.labels[:, 0].tolist() == [0, 1, 0, 1]
    assert batch.labels[:, 1].tolist() == [1, 0, 0, 1]
    assert batch.labels[:, 2].tolist() == [1, 4, 0, 5]
    assert batch.label_mask.tolist() == [[True] * 3, [True] * 3, [False] * 3, [True] * 3]


def test_transform_refuses_to_run_unfitted():
    pre = Preprocessor(FeaturesConfig(numeric=["x"]), [])
    with pytest.raises(RuntimeError, match="before fit"):
        pre.transform(pd.DataFrame({"x": [1.0]}))


@pytest.mark.parametrize(
    ("task", "frame", "message"),
    [
        (TaskSpec(name="y", column="y", type="binary"), {"y": ["yes", "no"]},
         r"unexpected values 'no', 'yes'|unexpected values 'yes', 'no'"),
        (TaskSpec(name="y", column="y", type="binary", positive=["a"], negative=["b"]),
         {"y": ["a", "b", "c"]}, "unexpected values 'c'"),
        (TaskSpec(name="y", column="y", type="binary", positive=["typo"]), {"y": ["a", "b"]},
         "every training label is negative"),
        (TaskSpec(name="y", column="y", type="regression"), {"y": ["1.5", "high"]},
         "must be numeric but holds 'high'"),
        (TaskSpec(name="y", column="yy", type="regression"), {"y": [1.0, 2.0]},
         r"lacks 1 required column: 'yy' \(did you mean 'y'\?\)"),
    ],
)  # fmt: skip
def test_bad_labels_are_one_line_errors(task, frame, message):
    df = pd.DataFrame({"x": [1.0] * len(next(iter(frame.values()))), **frame})
    with pytest.raises(DataError, match=message) as info:
        Preprocessor(FeaturesConfig(numeric=["x"]), [task]).fit(df)
    assert "\n" not in str(info.value)


def test_non_numeric_feature_is_an_error():
    df = pd.DataFrame({"x": ["1", "two"], "y": [0, 1]})
    pre = Preprocessor(FeaturesConfig(numeric=["x"]), [TaskSpec(name="y", column="y",
                                                                type="binary")])  # fmt: skip
    with pytest.raises(DataError, match="numeric feature 'x' must be numeric but holds 'two'"):
        pre.fit(df)
