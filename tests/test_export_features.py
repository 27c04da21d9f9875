"""``mmoe export`` of the newer run features: standardised regression targets, numeric
encodings, seed ensembles, CGC and PLE. Each exported file must give ``TrainedModel.predict``'s
answers (to 1e-5) on rows with unseen categories, missing categories and NaNs mixed in."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

pytest.importorskip("onnxruntime")
import onnx
import onnxruntime as ort

import mmoe
from mmoe.onnx.metadata import ModelInfo, table_feed

ROWS = 400
pytestmark = pytest.mark.filterwarnings("ignore::mmoe.errors.MmoeWarning")  # unseen categories


def synthetic_table(n: int, seed: int) -> pd.DataFrame:
    """A city, a zero-inflated ``gain``, a smooth ``age``; a regression and a binary label."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["a", "b", "c", "d"], n)
    gain = np.where(rng.random(n) < 0.5, 0.0, rng.integers(1, 40, n) * 37.0)
    age = rng.integers(18, 80, n).astype(float)
    seconds = 300 + 2.0 * age + 0.02 * gain + (city == "a") * 40 + rng.normal(0, 5, n)
    click = (age + rng.normal(0, 10, n) > 45).astype(int)
    return pd.DataFrame(
        {"city": city, "gain": gain, "age": age, "seconds": seconds, "click": click}
    )


BASE = {
    "features": {"categorical": ["city"], "numeric": ["gain", "age"]},
    "tasks": [
        {"name": "watch", "column": "seconds", "type": "regression"},
        {"name": "clicked", "column": "click", "type": "binary"},
    ],
    "model": {"name": "mmoe", "num_experts": 2, "expert_hidden": [8], "tower_hidden": [4]},
    "training": {"epochs": 2, "batch_size": 64, "learning_rate": 0.01, "patience": None},
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export_features")
    synthetic_table(ROWS, 0).to_csv(out / "train.csv", index=False)
    synthetic_table(200, 1).to_csv(out / "valid.csv", index=False)
    return out


def damaged(n: int = 200) -> pa.Table:
    """Fresh rows with unseen and missing categories, NaNs and values never seen in training."""
    df = synthetic_table(n, 7)
    rows = np.arange(n)
    city = np.array(df["city"].tolist(), dtype=object)
    city[rows % 7 == 0] = "never-seen"
    city[rows % 11 == 3] = None
    gain, age = df["gain"].to_numpy().copy(), df["age"].to_numpy().copy()
    gain[rows % 5 == 1] = np.nan
    gain[rows % 13 == 2] = 123.5  # a value the `values` encoding never kept
    gain[rows % 19 == 5] = -37.0
    gain[rows % 23 == 6] = -0.0  # equals the kept 0.0
    gain[rows % 29 == 7] = np.nextafter(0.0, 1.0)  # one ulp from a kept value: never kept
    age[rows % 6 == 2] = np.nan
    age[rows % 17 == 4] = 150.0  # beyond the last edge
    return pa.table({"city": pa.array(city.tolist(), pa.string()), "gain": gain, "age": age})


def train_and_export(data_dir: Path, tmp_path: Path, tensor_inputs: bool = False, **sections):
    config = copy.deepcopy(BASE)
    config["data"] = {
        "source": "table",
        "train": str(data_dir / "train.csv"),
        "valid": str(data_dir / "valid.csv"),
    }
    for key, value in sections.items():
        config[key] = value if key == "model" else {**config.get(key, {}), **value}
    mmoe.train(config, out_dir=tmp_path / "run", progress=False)
    report = mmoe.export(tmp_path / "run", tmp_path / "m.onnx", tensor_inputs=tensor_inputs)
    return mmoe.load(tmp_path / "run"), report


def onnx_outputs(trained: mmoe.TrainedModel, path: Path, rows: pa.Table) -> dict:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    info = ModelInfo.from_props(session.get_modelmeta().custom_metadata_map)
    if info.raw_inputs:
        feed = table_feed(rows, info)
    else:
        batch = trained.preprocessor.transform(rows, labels=False)
        feed = {"categorical": batch.categorical.numpy().astype(np.int64)}
        feed["numeric"] = batch.numeric.numpy()
    onnx_outputs.last_feed = feed  # type: ignore[attr-defined]
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed), strict=True)) | {"info": info}


def assert_matches_predict(trained: mmoe.TrainedModel, path: Path) -> dict:
    rows = damaged()
    got = onnx_outputs(trained, path, rows)
    expected = trained.predict(rows)
    stds = {t: s["std"] for t, s in trained.preprocessor.target_stats_.items()}
    for task in trained.task_names:
        # Standardised regression tasks in standard deviations: the float32 network's rounding
        # is scaled by std in the target's unit (test_standardised... checks the affine map).
        diff = np.abs(got[task] - expected[task].to_numpy()) / stds.get(task, 1.0)
        assert np.max(diff) <= 1e-5, task
    if trained.model.has_gates:
        assert np.max(np.abs(got["gates"] - trained.gate_weights(rows))) <= 1e-5
    return got


@pytest.mark.parametrize("tensor_inputs", [False, True])
def test_standardised_regression_output_is_in_the_targets_unit(
    data_dir: Path, tmp_path: Path, tensor_inputs: bool
) -> None:
    trained, report = train_and_export(data_dir, tmp_path, tensor_inputs)
    assert report.standardized == ["watch"]  # its max_difference is in standard deviations
    stats = trained.preprocessor.target_stats_["watch"]
    assert 350 < stats["mean"] < 500  # the label is in seconds, so the model's output is not
    got = assert_matches_predict(trained, report.path)
    assert abs(got["watch"].mean() - stats["mean"]) < 3 * stats["std"]
    assert got["watch"].dtype == np.float64 and got["clicked"].dtype == np.float32
    # The network's own output z, read out of the graph: the export's value is exactly
    # float64(z) * std + mean, and z agrees with the torch model's to 1e-5.
    model = onnx.load(str(report.path))
    model.graph.output.append(onnx.helper.make_tensor_value_info("logits", 1, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rows = damaged()
    info = got["info"]
    feed = table_feed(rows, info) if info.raw_inputs else onnx_outputs.last_feed
    watch, logits = session.run(["watch", "logits"], feed)
    z = logits[:, 0].astype(np.float64)
    assert np.array_equal(watch, z * stats["std"] + stats["mean"])
    assert np.max(np.abs(z - trained.predict_logits(rows)[:, 0])) <= 1e-5
    expected = trained.predict(rows)["watch"].to_numpy()
    assert np.max(np.abs(watch - expected)) <= 1e-5 * stats["std"]
    props = got["info"].public()
    assert props["target_stats"] == {"watch": stats}
    assert "z * std + mean" in props["outputs"]


@pytest.mark.parametrize(
    ("gain", "age"),
    [
        ({"encoding": "values", "min_frequency": 5}, {"encoding": "quantile_bins", "bins": 4}),
        ({"encoding": "tree_bins", "bins": 4, "tree_task": "watch"}, {"encoding": "standardize"}),
        ({"encoding": "piecewise_linear", "bins": 3}, {"encoding": "piecewise_linear", "bins": 4,
                                                       "keep_raw": False}),
        # log1p before the encoding: codes are decided on the raw value (onnxruntime's Log
        # differs from numpy's log1p by an ulp on about one integer in five)
        ({"encoding": "values", "transform": "log1p", "min_frequency": 3},
         {"encoding": "quantile_bins", "bins": 6, "transform": "log1p"}),
        # nothing kept (every value unknown) and no numeric column left at all
        ({"encoding": "values", "keep_raw": False, "min_frequency": 10_000},
         {"encoding": "quantile_bins", "bins": 2, "keep_raw": False}),
    ],
)  # fmt: skip
def test_numeric_encodings_export_as_onnx_ops(
    data_dir: Path, tmp_path: Path, gain: dict, age: dict
) -> None:
    features = {"numeric": [{"name": "gain", **gain}, {"name": "age", **age}]}
    trained, report = train_and_export(data_dir, tmp_path, features=features)
    assert trained.preprocessor.numeric_encodings_  # the encodings are really in use
    got = assert_matches_predict(trained, report.path)
    # Known answers for the graph's encoding: the model's input tensors equal transform's.
    kinds = {f["name"]: f.get("encoding", {}).get("kind") for f in got["info"].features}
    assert kinds["gain"] == gain["encoding"]


@pytest.mark.parametrize(
    ("gain", "age", "widths"),
    [
        ({"encoding": "values", "min_frequency": 5}, {"encoding": "piecewise_linear", "bins": 4},
         (2, 6)),  # city, gain codes; 2 z + 4 parts
        # both binned: one edge table (gain's 1 edge padded with NaN to age's 7), no numeric
        # column left
        ({"encoding": "quantile_bins", "bins": 3, "transform": "log1p", "keep_raw": False},
         {"encoding": "quantile_bins", "bins": 8, "keep_raw": False}, (3, 0)),
        # a `values` code before a bin code: one Gather puts the two kinds back in model order
        ({"encoding": "values", "min_frequency": 5, "keep_raw": False},
         {"encoding": "quantile_bins", "bins": 5}, (3, 1)),
    ],
)  # fmt: skip
def test_encoded_inputs_of_the_graph_equal_preprocessor_transform(
    data_dir: Path, tmp_path: Path, gain: dict, age: dict, widths: tuple[int, int]
) -> None:
    """The ``categorical``/``numeric`` tensors inside the graph, read out, equal transform's."""
    features = {"numeric": [{"name": "gain", **gain}, {"name": "age", **age}]}
    trained, report = train_and_export(data_dir, tmp_path, features=features)
    model = onnx.load(str(report.path))
    outputs = [("categorical", onnx.TensorProto.INT64)] + [("numeric", 1)] * (widths[1] > 0)
    for name, elem in outputs:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, elem, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rows = damaged()
    info = ModelInfo.from_props(session.get_modelmeta().custom_metadata_map)
    got = session.run([name for name, _ in outputs], table_feed(rows, info))
    batch = trained.preprocessor.transform(rows, labels=False)
    cat = got[0]
    assert cat.shape == (200, widths[0])
    assert np.array_equal(cat, batch.categorical.numpy())
    if widths[1]:
        assert got[1].shape == (200, widths[1])
        assert np.array_equal(got[1], batch.numeric.numpy())
    values = {n: rows.column(n).to_numpy(zero_copy_only=False) for n in ("gain", "age")}
    for column, name in ((1, "gain"), (2, "age")):
        if name == "age" and age["encoding"] == "piecewise_linear":
            continue
        assert np.all(cat[np.isnan(values[name]), column] == 0)  # missing: code 0 everywhere
    if age["encoding"] != "piecewise_linear":  # bins: beyond the last edge is the top bin
        edges = trained.preprocessor.numeric_encodings_["age"].values
        assert np.all(cat[values["age"] == 150.0, 2] == len(edges) + 1)
    if gain["encoding"] == "values":  # the exact lookup on doubles
        gain_in = values["gain"]
        assert np.all(cat[gain_in == 123.5, 1] == 0)
        zero_code = cat[(gain_in == 0.0) & ~np.signbit(gain_in), 1]
        assert zero_code.size and np.all(zero_code > 0)  # -0.0 is 0.0's code
        assert np.all(cat[np.signbit(gain_in) & (gain_in == 0.0), 1] == zero_code[0])
        assert np.all(cat[gain_in == np.nextafter(0.0, 1.0), 1] == 0)  # one ulp away: unknown


def test_seed_ensemble_exports_as_one_graph_with_every_members_gates(
    data_dir: Path, tmp_path: Path
) -> None:
    trained, report = train_and_export(data_dir, tmp_path, training={"ensemble_size": 2})
    assert type(trained.model).__name__ == "SeedEnsemble"
    got = assert_matches_predict(trained, report.path)
    assert got["gates"].shape == (200, 4, 2)  # 2 members x 2 task gates, 2 experts
    props = got["info"].public()
    assert props["ensemble_size"] == 2
    assert props["gate_rows"] == [[0, "watch"], [0, "clicked"], [1, "watch"], [1, "clicked"]]
    assert "ensemble members" in props["outputs"]


@pytest.mark.parametrize(
    "model",
    [
        {"name": "cgc", "num_shared_experts": 1, "num_task_experts": 1, "expert_hidden": [6],
         "tower_hidden": [4]},
        {"name": "ple", "num_levels": 2, "num_shared_experts": 1, "num_task_experts": 1,
         "expert_hidden": [6], "tower_hidden": [4]},
    ],
)  # fmt: skip
def test_cgc_and_ple_export_with_their_gate_rows(
    data_dir: Path, tmp_path: Path, model: dict
) -> None:
    trained, report = train_and_export(data_dir, tmp_path, model=model)
    got = assert_matches_predict(trained, report.path)
    rows, experts = trained.model.gate_rows, trained.model.expert_names
    assert got["gates"].shape == (200, len(rows), len(experts))
    props = got["info"].public()
    assert props["gate_rows"] == json.loads(json.dumps([list(r) for r in rows]))
    assert props["expert_names"] == list(experts)
