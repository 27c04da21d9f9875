"""``mmoe export``: the ONNX file agrees with ``mmoe predict`` on every architecture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("onnxruntime")
import onnxruntime as ort

import mmoe
from mmoe.data.tables import canonical_strings
from mmoe.onnx.metadata import ModelInfo, table_feed
from tests.test_cli import assert_one_line_error, cli

ARCHITECTURES = ("shared_bottom", "omoe", "mmoe")


def damaged_rows(table: pa.Table, trained: mmoe.TrainedModel, n: int = 400) -> pa.Table:
    """``n`` rows of ``table`` with unseen and missing categories and missing numbers."""
    table = table.slice(0, n)
    rng = np.random.default_rng(1)
    columns = {}
    for feat in trained.preprocessor.features.categorical:
        values = canonical_strings(table.column(feat.name)).to_pylist()
        for i in rng.choice(n, n // 6, replace=False):
            values[i] = "never-seen-in-training"
        for i in rng.choice(n, n // 10, replace=False):
            values[i] = None
        columns[feat.name] = pa.array(values, type=pa.string())
    for feat in trained.preprocessor.features.numeric:
        values = table.column(feat.name).to_numpy(zero_copy_only=False).astype(float)
        values[rng.choice(n, n // 8, replace=False)] = np.nan
        columns[feat.name] = pa.array(values)
    return pa.table(columns)


@pytest.fixture(scope="module")
def exported(tiny_census_runs: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("onnx")
    return {
        name: mmoe.export(run, out / f"{name}.onnx", check_rows=300)
        for name, run in tiny_census_runs.items()
    }


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_onnx_matches_predict_on_census_test_rows(
    arch: str, tiny_census_runs: dict, exported: dict, small_census_dir: Path
) -> None:
    from mmoe.data.census import read_census_file

    trained = mmoe.load(tiny_census_runs[arch])
    rows = damaged_rows(read_census_file(small_census_dir / "census-income.test"), trained)
    session = ort.InferenceSession(str(exported[arch].path))
    info = ModelInfo.from_props(session.get_modelmeta().custom_metadata_map)
    outputs = dict(
        zip(
            [o.name for o in session.get_outputs()],
            session.run(None, table_feed(rows, info)),
            strict=True,
        )
    )
    expected = trained.predict(rows)
    for task in trained.task_names:
        np.testing.assert_allclose(outputs[task], expected[task], rtol=0, atol=1e-5)
    codes = trained.preprocessor.transform(rows, labels=False).categorical.numpy()
    # categorical_codes holds the categorical features' codes; encoded numeric columns follow.
    width = len(trained.preprocessor.features.categorical)
    np.testing.assert_array_equal(outputs["categorical_codes"], codes[:, :width])
    assert (codes == 0).any(), "the injected categories must hit the unknown index"
    if trained.model.has_gates:
        np.testing.assert_allclose(outputs["gates"], trained.gate_weights(rows), atol=1e-5)
    else:
        assert "gates" not in outputs
    assert exported[arch].max_difference and max(exported[arch].max_difference.values()) < 1e-5


def test_metadata_describes_the_model(tiny_census_runs: dict, exported: dict) -> None:
    session = ort.InferenceSession(str(exported["mmoe"].path))
    props = session.get_modelmeta().custom_metadata_map
    trained = mmoe.load(tiny_census_runs["mmoe"])
    assert json.loads(props["mmoe.tasks"]) == [
        {"name": "income", "type": "binary"},
        {"name": "marital", "type": "binary"},
    ]
    features = json.loads(props["mmoe.features"])
    assert [f["name"] for f in features] == trained.preprocessor.features.column_names
    assert props["mmoe.architecture"] == "mmoe" and props["mmoe.inputs"] == "raw"
    assert json.loads(props["mmoe.gate_rows"]) == [[0, "income"], [0, "marital"]]
    assert json.loads(props["mmoe.expert_names"]) == ["expert0", "expert1", "expert2"]
    assert len(props["mmoe.weights_sha256"]) == 64
    inputs = {i.name: i.type for i in session.get_inputs()}
    assert inputs["age"] == "tensor(double)" and inputs["race"] == "tensor(string)"
    # standard operators only: the default domain and ai.onnx.ml
    model_domains = {
        n.domain for n in __import__("onnx").load(str(exported["mmoe"].path)).graph.node
    }
    assert model_domains <= {"", "ai.onnx.ml"}


def test_tensor_inputs_variant(tiny_census_runs: dict, tmp_path: Path, census_table) -> None:
    report = mmoe.export(tiny_census_runs["omoe"], tmp_path / "t.onnx", tensor_inputs=True)
    assert report.inputs == ["categorical", "numeric"]
    trained = mmoe.load(tiny_census_runs["omoe"])
    batch = trained.preprocessor.transform(census_table.slice(0, 50), labels=False)
    session = ort.InferenceSession(str(report.path))
    got = session.run(
        ["income"],
        {
            "categorical": batch.categorical.numpy().astype(np.int64),
            "numeric": batch.numeric.numpy(),
        },
    )[0]
    expected = trained.predict(census_table.slice(0, 50))["income"]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_export_refuses_to_write_when_it_disagrees(tiny_census_runs: dict, tmp_path: Path) -> None:
    target = tmp_path / "m.onnx"
    with pytest.raises(mmoe.ArtifactError, match="disagrees with `mmoe predict`"):
        mmoe.export(tiny_census_runs["shared_bottom"], target, tolerance=-1.0, check_rows=20)
    assert not target.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("arch", ["mmoe", "shared_bottom"])
def test_dynamo_exporter_matches_predict(arch: str, tiny_census_runs: dict, tmp_path: Path) -> None:
    pytest.importorskip("onnxscript", reason="the dynamo exporter needs onnxscript (mmoe[dynamo])")
    report = mmoe.export(
        tiny_census_runs[arch], tmp_path / "m.onnx", check_rows=200, exporter="dynamo"
    )
    assert report.rows_checked == 200 and max(report.max_difference.values()) < 1e-5
    assert ("gates" in report.outputs) == (arch == "mmoe")


def test_export_command(tiny_census_runs: dict, tmp_path: Path, capsys) -> None:
    code, out, _ = cli(
        "export",
        tiny_census_runs["shared_bottom"],
        "-o",
        tmp_path / "m.onnx",
        "--check-rows",
        "50",
        capsys=capsys,
    )
    assert code == 0 and "largest difference from `mmoe predict`" in out
    assert (tmp_path / "m.onnx").stat().st_size > 0
    result = cli("export", tmp_path / "nowhere", "-o", tmp_path / "x.onnx", capsys=capsys)
    assert_one_line_error(result, "run directory not found")
