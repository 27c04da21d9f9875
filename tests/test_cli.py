"""The ``mmoe`` command end to end on real census rows, and one clear line for every bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mmoe.cli import main

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """Run the console-script entry point in-process; return (exit status, stdout, stderr)."""
    argv = sys.argv
    sys.argv = ["mmoe", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(result: tuple[int, str, str], *fragments: str) -> None:
    code, _, err = result
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture(scope="module")
def census_run(tmp_path_factory, census_config_raw) -> Path:
    """A run directory trained by `mmoe train` on the small census files."""
    work = tmp_path_factory.mktemp("cli")
    config = work / "g1.yaml"
    config.write_text(yaml.safe_dump(census_config_raw))
    out = work / "run"
    code = subprocess.run(
        [sys.executable, "-m", "mmoe.cli", "train", str(config), "--out", str(out), "-q"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert code.returncode == 0, code.stderr
    assert "income" in code.stdout and "saved" in code.stdout
    return out


@pytest.fixture()
def census_csv(tmp_path, census_table) -> Path:
    """Census rows as an ordinary CSV with a header, as a user would hand them in."""
    path = tmp_path / "people.csv"
    census_table.slice(0, 200).to_pandas().to_csv(path, index=False)
    return path


def test_train_prints_metrics_and_evaluate_agrees(census_run, capsys):
    saved = json.loads((census_run / "metrics.json").read_text())
    code, out, _ = cli("evaluate", census_run, "test", "--json", capsys=capsys)
    assert code == 0
    assert json.loads(out) == saved["test"]
    code, out, _ = cli("evaluate", census_run, "valid", capsys=capsys)
    assert code == 0 and "auc" in out and "marital" in out


def test_evaluate_on_a_file(census_run, small_census_dir, capsys):
    code, out, _ = cli(
        "evaluate", census_run, small_census_dir / "census-income.test", "--json", capsys=capsys
    )
    assert code == 0 and json.loads(out)["income"]["rows"] == 3000


def test_predict_csv_and_parquet_keep_row_order(census_run, census_csv, tmp_path, capsys):
    from mmoe import load

    expected = load(census_run).predict(pd.read_csv(census_csv))
    for name in ("out.csv", "out.parquet"):
        code, out, _ = cli(
            "predict", census_run, census_csv, "-o", tmp_path / name, "--keep", "age",
            capsys=capsys,
        )  # fmt: skip
        assert code == 0 and "wrote 200 rows" in out
        got = (
            pd.read_csv(tmp_path / name)
            if name.endswith("csv")
            else pd.read_parquet(tmp_path / name)
        )
        assert list(got.columns) == ["age", "income", "marital"]
        assert np.allclose(got[["income", "marital"]].to_numpy(), expected.to_numpy(), atol=1e-12)
        assert got["age"].tolist() == pd.read_csv(census_csv)["age"].tolist()


def test_predict_handles_unknown_categories(census_run, census_csv, tmp_path, capsys):
    frame = pd.read_csv(census_csv)
    frame["class of worker"] = "Astronaut"
    frame.to_csv(tmp_path / "odd.csv", index=False)
    code, _, _ = cli("predict", census_run, tmp_path / "odd.csv", "-o", tmp_path / "p.csv",
                     capsys=capsys)  # fmt: skip
    assert code == 0 and len(pd.read_csv(tmp_path / "p.csv")) == 200


def test_console_script_help():
    exe = shutil.which("mmoe", path=str(Path(sys.executable).parent))
    assert exe is not None
    for command in ([], ["train"], ["evaluate"], ["predict"]):
        done = subprocess.run([exe, *command, "--help"], capture_output=True, text=True)
        assert done.returncode == 0 and "Usage" in done.stdout


# ---- bad input: one line, non-zero exit, nothing lost --------------------------------------------


def test_config_typo(tmp_path, census_config_raw, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(census_config_raw))
    result = cli("train", config, "--set", "model.num_expert=4", "--out", tmp_path / "r",
                 capsys=capsys)  # fmt: skip
    assert_one_line_error(result, "model.num_expert: unknown key", "num_experts")
    assert not (tmp_path / "r").exists()


def test_missing_column(tmp_path, census_config_raw, capsys):
    raw = json.loads(json.dumps(census_config_raw))
    raw["features"]["categorical"].append("favourite colour")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = cli("train", config, "--out", tmp_path / "r", "-q", capsys=capsys)
    assert_one_line_error(result, "the table lacks 1 required column: 'favourite colour'")
    assert not (tmp_path / "r").exists()


def test_label_with_unexpected_values(tmp_path, census_config_raw, capsys):
    raw = json.loads(json.dumps(census_config_raw))
    raw["tasks"][0]["negative"] = ["-50000"]  # misspelt: the file says "- 50000."
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = cli("train", config, "-q", "--out", tmp_path / "r", capsys=capsys)
    assert_one_line_error(result, "task 'income'", "unexpected values '- 50000.'")


@pytest.mark.parametrize("content", ["", "age,sex\n40,M\n41\n"], ids=["empty", "truncated"])
def test_empty_or_truncated_csv(tmp_path, content, census_run, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    config = {
        "data": {"source": "table", "train": str(bad)},
        "features": {"numeric": ["age"]},
        "tasks": [{"name": "t", "column": "sex", "type": "binary", "positive": ["M"]}],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    result = cli("train", tmp_path / "c.yaml", "-q", "--out", tmp_path / "r", capsys=capsys)
    assert_one_line_error(result, str(bad))
    result = cli("predict", census_run, bad, "-o", tmp_path / "p.csv", capsys=capsys)
    assert_one_line_error(result, str(bad))
    assert not (tmp_path / "p.csv").exists()


def test_predict_missing_feature_column(census_run, census_csv, tmp_path, capsys):
    pd.read_csv(census_csv).drop(columns=["age"]).to_csv(tmp_path / "x.csv", index=False)
    result = cli("predict", census_run, tmp_path / "x.csv", "-o", tmp_path / "p.csv",
                 capsys=capsys)  # fmt: skip
    assert_one_line_error(result, "the table lacks 1 feature column: 'age'")
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda d: (d / "preprocessor.json").unlink(), "has no preprocessor.json"),
        (lambda d: (d / "model.safetensors").unlink(), "has no model.safetensors"),
        (lambda d: (d / "config.json").write_text("{not json"), "config.json is corrupt"),
        (lambda d: (d / "model.safetensors").write_bytes(
            (d / "model.safetensors").read_bytes()[:500]), "model.safetensors is corrupt"),
        (lambda d: (d / "preprocessor.json").write_text('{"format_version": 7}'),
         "preprocessor format version 7 is not supported"),
    ],
    ids=["no-preprocessor", "no-weights", "corrupt-config", "truncated-weights", "version"],
)  # fmt: skip
def test_damaged_run_directory(census_run, tmp_path, damage, fragment, capsys):
    copy = tmp_path / "run"
    shutil.copytree(census_run, copy)
    damage(copy)
    assert_one_line_error(cli("evaluate", copy, "test", capsys=capsys), fragment)


def test_missing_run_directory_and_input(tmp_path, census_run, capsys):
    assert_one_line_error(
        cli("evaluate", tmp_path / "none", "test", capsys=capsys), "run directory not found"
    )
    assert_one_line_error(
        cli("predict", census_run, tmp_path / "none.csv", "-o", tmp_path / "p.csv", capsys=capsys),
        "data file not found",
    )


def test_real_process_exit_status_and_stderr(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mmoe.cli", "train", str(ROOT / "configs/synthetic-mmoe.yaml"),
         "--set", "training.epoch=1", "--out", str(tmp_path / "r")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {ROOT / 'configs/synthetic-mmoe.yaml'}: training.epoch: unknown key "
        "(did you mean 'epochs'?)"
    ]
