"""The synthetic study: the correlation curve, the summaries, and both commands end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmoe.experiments.synthetic_study import (
    correlation_curve,
    mean_curves,
    summarize,
)
from tests.test_cli import cli


def test_label_correlation_grows_with_the_cosine_and_stays_far_below_it():
    rows = correlation_curve([0.0, 0.5, 0.9, 1.0], seeds=6, num_samples=20_000)
    means = [r["mean"] for r in rows]
    assert means == sorted(means)  # monotone in the cosine
    assert abs(means[0]) < 0.05  # orthogonal weights: unrelated labels
    assert means[2] < 0.9 - 0.15  # paper Fig. 2: far below the cosine
    assert means[3] > 0.98  # same weights: only the noise separates the labels


def test_summary_and_mean_curves():
    results = [
        {"model": "mmoe", "correlation": 0.5, "seed": s, "final_test_loss": loss,
         "curve": [[10, loss + 1.0], [20, loss]]}
        for s, loss in enumerate([0.1, 0.3])
    ] + [
        {"model": "shared_bottom", "correlation": 0.5, "seed": 0, "final_test_loss": 0.5,
         "curve": [[10, 2.0], [20, 0.5]]}
    ]  # fmt: skip
    rows = summarize(results)
    assert [(r["model"], r["runs"]) for r in rows] == [("shared_bottom", 1), ("mmoe", 2)]
    mmoe_row = rows[1]
    assert mmoe_row["mean"] == pytest.approx(0.2) and mmoe_row["std"] == pytest.approx(0.1)
    assert mmoe_row["min"] == 0.1 and mmoe_row["max"] == 0.3
    steps, losses = mean_curves(results)[("mmoe", 0.5)]
    assert steps == [10, 20] and np.allclose(losses, [1.2, 0.2])
    results.append({**results[0], "seed": 2, "curve": [[10, 9.0], [20, 9.0]]})  # diverged
    _, medians = mean_curves(results, "median")[("mmoe", 0.5)]
    assert np.allclose(medians, [1.3, 0.3])  # the middle seed, not pulled up to the outlier


def test_commands_end_to_end(tmp_path, capsys):
    code, out, err = cli(
        "paper", "correlation-curve", "--seeds", "2", "--samples", "2000", "--out", tmp_path,
        capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "| 0.90 |" in out and (tmp_path / "correlation_curve.png").stat().st_size > 1000
    code, out, err = cli(
        "paper", "synthetic", "--quick", "--seeds", "2", "--epochs", "1", "--num-train", "400",
        "--workers", "2", "--out", tmp_path, "-q", capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())["summary"]
    assert {(r["model"], r["correlation"]) for r in summary} == {
        (m, c) for m in ("shared_bottom", "omoe", "mmoe") for c in (1.0, 0.9, 0.5)
    }
    assert all(r["runs"] == 2 and r["mean"] > 0 for r in summary)
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert runs["profile"]["epochs"] == 1 and len(runs["runs"]) == 18
    for name in ("loss_curves.png", "final_loss_histograms.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert "| MMoE | 0.5 | 2 |" in out
    assert "| 0.5 | MMoE < OMoE |" in out and " of 2 |" in out
    effect = json.loads((tmp_path / "summary.json").read_text())["correlation_effect"]
    assert len(effect) == 9 and all(r["seeds"] == 2 for r in effect)  # 3 models x 3 pairs
    assert "| OMoE | 0.5 vs 1.0 |" in out


def test_cgc_and_ple_join_the_study_on_request(tmp_path, capsys):
    code, out, err = cli(
        "paper", "synthetic", "--quick", "--seeds", "1", "--epochs", "1", "--num-train", "400",
        "--models", "mmoe,cgc,ple", "--correlations", "0.5", "--workers", "1",
        "--out", tmp_path, "-q", capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())["summary"]
    assert [(r["model"], r["correlation"]) for r in summary] == [
        ("mmoe", 0.5), ("cgc", 0.5), ("ple", 0.5),
    ]  # fmt: skip
    assert "| 0.5 | PLE < CGC |" in out and "| 0.5 | CGC < MMoE |" in out
    for bad, message in [(["--models", "mmoe,deepfm"], "unknown model 'deepfm'"),
                         (["--correlations", "0.5,x"], "give numbers"),
                         (["--correlations", "2"], "must lie in [-1, 1]")]:  # fmt: skip
        code, out, err = cli("paper", "synthetic", "--quick", *bad, capsys=capsys)
        assert code != 0 and message in err and len(err.strip().splitlines()) == 1, err
