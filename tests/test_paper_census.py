"""The census study: the table builder, and `mmoe paper census` end to end on real rows."""

from __future__ import annotations

import json

import pytest

from mmoe.experiments.census_tables import PAPER_MEAN_TEST_AUC, build_table, format_table
from tests.test_cli import assert_one_line_error, cli


def run(method, seed, valid, test, task=None):
    return {"method": method, "seed": seed, "task": task, "valid": valid, "test": test}


def test_table_builder_means_best_runs_and_paper_numbers():
    runs = [
        run("mmoe", 0, {"income": 0.90, "marital": 0.999}, {"income": 0.93, "marital": 0.991}),
        run("mmoe", 1, {"income": 0.95, "marital": 0.990}, {"income": 0.94, "marital": 0.993}),
        run("mmoe", 2, {"income": 0.92, "marital": 0.995}, {"income": 0.95, "marital": 0.995}),
        # Single-task: one run per task and seed; each column picks its own task's best run.
        run("single_task", 0, {"income": 0.91}, {"income": 0.92}, task="income"),
        run("single_task", 1, {"income": 0.93}, {"income": 0.91}, task="income"),
        run("single_task", 0, {"marital": 0.98}, {"marital": 0.985}, task="marital"),
        run("single_task", 1, {"marital": 0.97}, {"marital": 0.99}, task="marital"),
    ]
    mmoe_row, single_row = build_table(runs, group=1)
    assert mmoe_row["mean"] == {"income": pytest.approx(0.94), "marital": pytest.approx(0.993)}
    # Best run = best *main-task validation* AUC (seed 1), reported on test, for both tasks.
    assert mmoe_row["best"] == {"income": 0.94, "marital": 0.993}
    assert mmoe_row["runs"] == 3 and mmoe_row["paper"] == PAPER_MEAN_TEST_AUC[1]["mmoe"]
    assert single_row["mean"] == {"income": pytest.approx(0.915), "marital": pytest.approx(0.9875)}
    assert single_row["best"] == {"income": 0.91, "marital": 0.985}
    assert single_row["runs"] == 2
    text = format_table([mmoe_row, single_row], group=1)
    lines = text.splitlines()
    assert lines[0].startswith("| method | seeds | income mean ± std | income best run")
    assert lines[2].startswith("| MMoE | 3 | 0.9400 ± 0.0082 | 0.9400 | 0.9359 |")
    assert lines[3].startswith("| Single-Task | 2 | 0.9150 ± 0.0050 | 0.9100 | 0.9337 |")


def test_paper_census_command_end_to_end(small_census_dir, tmp_path, capsys):
    code, out, err = cli(
        "paper", "census", "--group", "2", "--data-dir", small_census_dir, "--seeds", "2",
        "--methods", "single_task,mmoe", "--lightgbm", "--workers", "2", "--out", tmp_path,
        "-q", capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "| MMoE | 2 |" in out and "| Single-Task | 2 |" in out and "| LightGBM" in out
    runs = json.loads((tmp_path / "runs.json").read_text())
    # 2 seeds × (2 single-task + 1 multi-task + 2 LightGBM) runs.
    assert len(runs) == 10
    assert {r["method"] for r in runs} == {"single_task", "mmoe", "lightgbm"}
    for r in runs:
        assert all(0.5 < auc <= 1.0 for auc in r["test"].values()), r
    assert (tmp_path / "table.md").read_text().strip() == out.split("\nwrote")[0].strip()


def test_paper_census_bad_options(small_census_dir, tmp_path, capsys):
    assert_one_line_error(
        cli("paper", "census", "--group", "3", "--data-dir", small_census_dir, capsys=capsys),
        "--group must be 1 or 2",
    )
    assert_one_line_error(
        cli("paper", "census", "--group", "1", "--data-dir", small_census_dir,
            "--methods", "mmoe,deepfm", capsys=capsys),
        "unknown method 'deepfm'",
    )  # fmt: skip
    assert_one_line_error(
        cli("paper", "census", "--group", "1", "--data-dir", tmp_path / "nowhere", capsys=capsys),
        "is not a directory",
    )


def test_paper_tune_records_every_trial_on_validation_only(small_census_dir, tmp_path, capsys):
    code, out, err = cli(
        "paper", "tune", "--group", "1", "--method", "mmoe", "--data-dir", small_census_dir,
        "--trials", "3", "--max-epochs", "4", "--workers", "2", "--out", tmp_path, "-q",
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    record = json.loads((tmp_path / "group1-mmoe.json").read_text())
    trials = record["trials"]
    assert [t["index"] for t in trials] == [0, 1, 2]
    assert trials[0]["overrides"] == []  # trial 0 is the shipped config
    assert all(set(t["valid_auc"]) == {"income", "marital"} for t in trials)
    assert not any("test" in t for t in trials)  # the search never sees the test split
    best = max(trials, key=lambda t: t["valid_auc"]["income"])
    assert f"best: trial {best['index']}," in out
    assert (tmp_path / "group1-mmoe.md").read_text().count("\n| ") == 4  # header + 3 trials


@pytest.mark.parametrize("method", ["cgc", "ple"])
def test_cgc_and_ple_census_configs_and_search_space(method):
    """The shipped configs load, and every trial the search could draw is a valid config."""
    from mmoe.config import load_config
    from mmoe.experiments.census_tables import METHODS, config_path
    from mmoe.experiments.tuning import sample_trials
    from tests.conftest import ROOT

    assert method in METHODS
    for group in (1, 2):
        path = config_path(ROOT / "configs/census", group, method)
        assert load_config(path).model.name == method
        for trial in sample_trials(method, 6, str(path), "d", search_seed=0):
            assert load_config(path, list(trial.overrides)).model.name == method


def test_ensemble_row_scores_the_mean_of_the_seeds_logits(tmp_path):
    import numpy as np

    from mmoe.experiments.census_tables import ensemble_rows

    labels = np.array([[0, 1], [1, 0], [0, 0], [1, 1]], dtype=np.float32)
    mask = np.ones_like(labels, dtype=bool)
    # Seed 0 ranks income wrong on rows 1/2, seed 1 on rows 0/3; their mean ranks all right.
    seeds = [
        np.array([[0.0, 1.0], [2.0, 0.0], [3.0, 0.0], [4.0, 1.0]]),
        np.array([[3.0, 1.0], [4.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]),
    ]
    for seed, logits in enumerate(seeds):
        arrays = {"test_logits": logits, "test_labels": labels, "test_mask": mask}
        np.savez(tmp_path / f"mmoe-seed{seed}.npz", **arrays)
    runs = [run("mmoe", s, {}, {}) for s in (0, 1)] + [run("lightgbm", 0, {}, {}, "income")]
    (row,) = ensemble_rows(runs, group=1, predictions_dir=tmp_path)
    assert row["method"] == "mmoe_ensemble" and row["runs"] == 2
    assert row["mean"] == {"income": 1.0, "marital": 1.0}
    assert "| MMoE ensemble of 2 | 2 | 1.0000 ± 0.0000 |" in format_table([row], group=1)


def test_lightgbm_uses_the_searched_parameters_of_its_group(tmp_path):
    from mmoe.experiments.gbdt import LIGHTGBM_PARAMS, sample_params, tuned_params

    config = tmp_path / "group2-single-task.yaml"
    assert tuned_params(config, "education") == LIGHTGBM_PARAMS  # no search record yet
    (tmp_path / "tuning").mkdir()
    best = {"education": {"learning_rate": 0.1, "num_leaves": 15}}
    (tmp_path / "tuning" / "group2-lightgbm.json").write_text(json.dumps({"best": best}))
    assert tuned_params(config, "education")["num_leaves"] == 15
    assert tuned_params(config, "marital") == LIGHTGBM_PARAMS
    trials = sample_params(6, search_seed=1)
    assert trials[0] == LIGHTGBM_PARAMS and len({str(t) for t in trials}) == 6


def test_paper_tune_lightgbm_searches_each_task_on_validation(small_census_dir, tmp_path, capsys):
    pytest.importorskip("lightgbm")
    code, _, err = cli(
        "paper", "tune", "--group", "1", "--method", "lightgbm", "--data-dir", small_census_dir,
        "--trials", "2", "--workers", "1", "--out", tmp_path, "-q", capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    record = json.loads((tmp_path / "group1-lightgbm.json").read_text())
    assert set(record["best"]) == {"income", "marital"}
    for search in record["tasks"].values():
        assert [t["index"] for t in search["trials"]] == [0, 1]
        assert not any("test" in t for t in search["trials"])
        best = max(search["trials"], key=lambda t: t["valid_auc"])
        assert record["best"][search["task"]] == best["params"]
    assert "## income" in (tmp_path / "group1-lightgbm.md").read_text()
