"""The CLI's conventions: --version, help as written, -o -, one-line errors for every bad output
path and bad table, unseen-category and one-class warnings, and a starter config from a table."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.test_cli import assert_one_line_error, cli

CITIES = ["Paris", "Lyon", "Nice", "Lille"]


def make_table(rows: int, seed: int) -> pd.DataFrame:
    """A small table of a user's own: text, numbers, a 0/1 label and a yes/no label."""
    rng = np.random.default_rng(seed)
    city = rng.choice(CITIES, rows)
    age = rng.integers(18, 80, rows).astype(float)
    score = (city == "Paris") * 1.5 + (age - 50) / 20 + rng.normal(0, 1, rows)
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, 50, rows),
            "city": city,
            "age": age,
            "clicked": (score > 0.5).astype(int),
            "bought": np.where(score > 1.2, "yes", "no"),
        }
    )


@pytest.fixture(scope="module")
def table_run(tmp_path_factory) -> tuple[Path, Path]:
    """(run directory, its training CSV): `mmoe init` then `mmoe train` on a 600-row table."""
    work = tmp_path_factory.mktemp("newcomer")
    csv = work / "mine.csv"
    make_table(600, 0).to_csv(csv, index=False)
    config = work / "mine.yaml"
    import mmoe
    from mmoe.starter import starter_config

    text = starter_config(csv, ["clicked", "bought"], [])
    config.write_text(text)
    run = work / "run"
    mmoe.train(config, out_dir=run, overrides=["training.epochs=2", "training.batch_size=64"],
               progress=False)  # fmt: skip
    return run, csv


def test_version(capsys):
    from mmoe import __version__

    code, out, _ = cli("--version", capsys=capsys)
    assert code == 0 and out.strip() == f"mmoe {__version__}"


def test_help_text_is_printed_as_written(capsys):
    code, out, _ = cli("paper", "synthetic", "--help", capsys=capsys)
    out = " ".join(out.split())  # help is wrapped to the terminal's width
    assert code == 0
    assert "Runs per model and correlation [profile's]." in out
    assert "[default: runs/paper-synthetic]" in out
    code, out, _ = cli("paper", "tune", "--help", capsys=capsys)
    out = " ".join(out.split())
    assert code == 0
    assert "[default: 16" in out and "[default: 30" in out and "[default: 0]" in out
    assert "[default: the shipped configs]" in out and "[default: CONFIGS/census/tuning]" in out


def all_commands() -> list[list[str]]:
    import typer.main

    from mmoe.cli import app

    group = typer.main.get_command(app)
    paths: list[list[str]] = [[]]
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        paths.append([name])
        for sub in getattr(command, "commands", {}):
            paths.append([name, sub])
    return paths


@pytest.mark.parametrize("path", all_commands(), ids=lambda p: " ".join(p) or "mmoe")
def test_every_command_has_help(path, capsys):
    code, out, err = cli(*path, "--help", capsys=capsys)
    assert code == 0 and "Usage: mmoe" in out and not err
    # No rich markup survives as text, and no bracketed word vanished: brackets come in pairs.
    assert out.count("[") == out.count("]"), out


def test_predict_to_stdout(table_run, capsys):
    run, csv = table_run
    code, out, _ = cli("predict", run, csv, "-o", "-", "--keep", "user_id", capsys=capsys)
    assert code == 0
    frame = pd.read_csv(__import__("io").StringIO(out))
    assert list(frame.columns) == ["user_id", "clicked", "bought"] and len(frame) == 600


def test_bad_output_paths_are_one_line_errors(table_run, tmp_path, capsys):
    run, csv = table_run
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    cases = [
        (tmp_path, "is a folder; give a file name"),
        (a_file / "p.csv", "is not a folder"),
        (tmp_path / "p.txt", "must end in .csv or .parquet"),
    ]
    for target, fragment in cases:
        result = cli("predict", run, csv, "-o", target, capsys=capsys)
        assert_one_line_error(result, fragment)
    if os.geteuid() != 0:  # root may write anywhere: the permission check cannot fail then
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        result = cli("predict", run, csv, "-o", locked / "sub" / "p.csv", capsys=capsys)
        assert_one_line_error(result, "no permission")
    result = cli("predict", run, csv, "-o", "/proc/mmoe-no-such/p.csv", capsys=capsys)
    assert_one_line_error(result, "cannot write /proc/mmoe-no-such/p.csv")
    result = cli("train", run / "config.json", "--out", a_file / "run", capsys=capsys)
    assert_one_line_error(result, "is not a folder")


def test_headerless_and_wrongly_delimited_tables_get_a_hint(table_run, tmp_path, capsys):
    run, csv = table_run
    frame = pd.read_csv(csv)
    headerless = tmp_path / "headerless.csv"
    frame.to_csv(headerless, index=False, header=False)
    result = cli("predict", run, headerless, "-o", tmp_path / "p.csv", capsys=capsys)
    # Every missing column at once, and why they are missing.
    assert_one_line_error(result, "lacks 3 feature columns", "'user_id'", "'city'", "'age'",
                          "no header row")  # fmt: skip
    semicolons = tmp_path / "semicolons.csv"
    frame.to_csv(semicolons, index=False, sep=";")
    result = cli("evaluate", run, semicolons, capsys=capsys)
    assert_one_line_error(result, "';'-separated")


def test_unseen_categories_warn_on_predict_and_evaluate(table_run, tmp_path, capsys):
    run, csv = table_run
    frame = pd.read_csv(csv)
    frame["city"] = " " + frame["city"]  # a leading space: every value unseen
    shifted = tmp_path / "shifted.csv"
    frame.to_csv(shifted, index=False)
    code, out, err = cli("predict", run, shifted, "-o", tmp_path / "p.csv", capsys=capsys)
    assert code == 0 and "wrote 600 rows" in out
    warning = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1, err
    assert "column 'city': 100% of values (600 of 600)" in warning[0]
    assert "differs from training's" in warning[0] and "only in case or spaces" in warning[0]
    code, out, err = cli("evaluate", run, shifted, capsys=capsys)
    assert code == 0 and "column 'city': 100%" in err
    code, _, err = cli("evaluate", run, csv, capsys=capsys)  # the training spelling: silent
    assert code == 0 and "warning" not in err


def test_one_class_labels_warn_and_give_json_null(table_run, tmp_path, capsys):
    run, csv = table_run
    frame = pd.read_csv(csv)
    frame["clicked"] = 1
    one_class = tmp_path / "one_class.csv"
    frame.to_csv(one_class, index=False)
    code, out, err = cli("evaluate", run, one_class, "--json", capsys=capsys)
    assert code == 0
    assert json.loads(out)["clicked"]["auc"] is None and "NaN" not in out
    assert "task 'clicked': all 600 labels are of one class" in err


def test_yaml_yes_read_as_true_gets_a_quoting_hint(tmp_path, capsys):
    csv = tmp_path / "t.csv"
    make_table(200, 1).to_csv(csv, index=False)
    config = {
        "data": {"source": "table", "train": str(csv)},
        "features": {"categorical": ["city"]},
        "tasks": [{"name": "bought", "column": "bought", "type": "binary", "positive": [True]}],
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config).replace("- true", "- yes"))
    result = cli("train", path, "--out", tmp_path / "run", capsys=capsys)
    assert_one_line_error(result, "every training label is negative", 'positive: ["yes"]')


def test_init_writes_a_config_that_trains(table_run):
    run, _ = table_run
    config = json.loads((run / "config.json").read_text())
    assert [f["name"] for f in config["features"]["categorical"]] == ["user_id", "city"]
    assert [f["name"] for f in config["features"]["numeric"]] == ["age"]
    tasks = {t["name"]: t for t in config["tasks"]}
    assert tasks["clicked"]["type"] == "binary" and tasks["clicked"]["positive"] is None
    assert tasks["bought"]["positive"] == ["yes"]  # the rarer of two text values
    assert config["data"]["test_fraction"] == 0.1


def test_init_task_forms_and_errors(tmp_path, capsys):
    csv = tmp_path / "t.csv"
    make_table(100, 2).to_csv(csv, index=False)
    code, out, _ = cli("init", csv, "--task", "old=age>=60", "--task", "age2=age:regression",
                       capsys=capsys)  # fmt: skip
    assert code == 0
    tasks = yaml.safe_load(out)["tasks"]
    assert tasks[0] == {"name": "old", "column": "age", "type": "binary", "threshold": 60.0}
    assert tasks[1]["type"] == "regression"
    assert_one_line_error(cli("init", csv, "--task", "colour", capsys=capsys),
                          "lacks 1 --task/--drop column: 'colour'")  # fmt: skip
    assert_one_line_error(cli("init", csv, "--task", "city", capsys=capsys), "4 text values")


def test_show_prints_summary_and_draws_curves(table_run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    run, _ = table_run
    png = tmp_path / "curves.png"
    code, out, _ = cli("show", run, "--plot", png, capsys=capsys)
    assert code == 0
    assert "model      mmoe" in out and "test       clicked: auc" in out
    assert "torch" in out and "mine.csv" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_one_line_error(cli("show", tmp_path, capsys=capsys), "not a run directory")


def test_provenance_records_environment_and_data(table_run):
    run, csv = table_run
    prov = json.loads((run / "provenance.json").read_text())
    env, data = prov["environment"], prov["data"]
    assert env["torch"] and env["python"] and env["mmoe"]
    assert "git_commit" in env and "command" in env
    import hashlib

    assert data["files"][0]["sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()
    rows = {k: v["rows"] for k, v in data["splits"].items()}
    assert rows == {"train": 480, "valid": 60, "test": 60}  # 10% of the rows each
