"""Gates made visible: gate statistics, gate dropout, gate health in training, `mmoe gates`."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import torch

import mmoe
import mmoe.gates
from mmoe.config import TrainingConfig, parse_config
from mmoe.config.models import MMoEConfig
from mmoe.data.batch import Batch
from mmoe.data.loaders import InMemorySource
from mmoe.gates.analysis import analyse, label_correlation
from mmoe.gates.reporting import segment_codes
from mmoe.gates.stats import GateStats, find_problems, gate_health
from mmoe.io import dumps
from mmoe.layers import Gates, gate_dropout
from mmoe.models import MMoE, build_model
from mmoe.specs import InputSpec, TaskSpec
from mmoe.training.trainer import Trainer
from tests.test_cli import assert_one_line_error, cli

# ---- gate dropout --------------------------------------------------------------------------------


def test_gate_dropout_zero_is_the_plain_gate_in_training():
    torch.manual_seed(0)
    plain = Gates(6, 3, 4)
    torch.manual_seed(0)
    off = Gates(6, 3, 4, dropout=0.0)
    x = torch.randn(32, 6)
    state = torch.get_rng_state()
    assert torch.equal(plain.train()(x), off.train()(x))
    # p = 0 draws no random numbers: the generator is where it was.
    assert torch.equal(torch.get_rng_state(), state)
    config = MMoEConfig(num_experts=4)
    assert config.gate_dropout == 0.0
    spec = InputSpec((), (), 6)
    torch.manual_seed(1)
    default = build_model(config, spec, ["a", "b"])
    torch.manual_seed(1)
    explicit = build_model(MMoEConfig(num_experts=4, gate_dropout=0.0), spec, ["a", "b"])
    assert default.state_dict().keys() == explicit.state_dict().keys()
    assert torch.equal(default.train()(x[:, :0].long(), x), explicit.train()(x[:, :0].long(), x))


def test_gate_dropout_renormalises_to_one_and_keeps_ratios():
    g = torch.softmax(torch.randn(500, 2, 8, generator=torch.Generator().manual_seed(0)), -1)
    torch.manual_seed(3)
    out = gate_dropout(g, 0.3)
    assert torch.allclose(out.sum(-1), torch.ones(500, 2), atol=1e-6)
    kept = out > 0
    # Kept weights keep their ratios: out = g / (sum of kept g) on the kept experts.
    scale = (g * kept).sum(-1, keepdim=True)
    assert torch.allclose(out, torch.where(kept, g / scale, 0.0), atol=1e-6)
    share_dropped = 1 - kept.float().mean().item()
    assert abs(share_dropped - 0.3) < 0.02  # 8000 draws: the binomial sd is 0.005


def test_gate_dropout_fixed_seed_mask_is_known():
    g = torch.full((3, 1, 4), 0.25)
    torch.manual_seed(7)
    out = gate_dropout(g, 0.5)
    # torch.manual_seed(7); torch.rand(3, 1, 4) >= 0.5 keeps experts {0, 2, 3}, {3}, {1, 2, 3}:
    # uniform weights become 1 / (number kept) on the kept experts.
    third = 1 / 3
    expected = [[[third, 0, third, third]], [[0, 0, 0, 1]], [[0, third, third, third]]]
    assert torch.allclose(out, torch.tensor(expected))
    torch.manual_seed(7)
    assert torch.equal(out > 0, torch.rand(3, 1, 4) >= 0.5)


def test_gate_dropout_rows_with_everything_dropped_keep_their_weights():
    g = torch.softmax(torch.randn(200, 1, 2, generator=torch.Generator().manual_seed(1)), -1)
    g.requires_grad_(True)
    torch.manual_seed(0)
    out = gate_dropout(g, 0.95)  # most rows lose both experts
    untouched = (out == g).all(-1)
    assert untouched.sum() > 100
    assert torch.allclose(out.sum(-1), torch.ones(200, 1))
    out[:, 0, 0].sum().backward()
    assert torch.isfinite(g.grad).all()


def test_gate_dropout_is_identity_in_eval_and_reaches_the_model():
    torch.manual_seed(0)
    gates = Gates(5, 2, 4, dropout=0.5)
    torch.manual_seed(0)
    plain = Gates(5, 2, 4)
    x = torch.randn(64, 5)
    assert torch.equal(gates.eval()(x), plain.eval()(x))
    assert not torch.equal(gates.train()(x), plain.train()(x))
    model = build_model(MMoEConfig(num_experts=4, gate_dropout=0.1), InputSpec((), (), 5), ["a"])
    assert model.gates.dropout == 0.1
    bad = {"data": {"source": "synthetic"}, "model": {"name": "mmoe", "gate_dropout": 1.0}}
    with pytest.raises(mmoe.ConfigError, match="gate_dropout"):
        parse_config(bad)


# ---- statistics ----------------------------------------------------------------------------------


def test_divergence_and_entropy_have_known_answers():
    one_hot = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # two gates that never share
    same = torch.tensor([[[0.5, 0.5], [0.5, 0.5]]])
    stats = GateStats(2, 2, pairs=True)
    stats.update(one_hot)
    assert stats.divergence()[0, 1].item() == pytest.approx(1.0)
    assert stats.normalized_entropy().tolist() == [0.0, 0.0]
    stats = GateStats(2, 2, pairs=True)
    stats.update(same)
    assert stats.divergence()[0, 1].item() == pytest.approx(0.0)
    assert stats.normalized_entropy().tolist() == pytest.approx([1.0, 1.0])


def test_structural_zeros_are_not_dead_experts_and_levels_stay_apart():
    # A CGC/PLE-like layout: level 0 has a task gate over experts 0-1 and a shared gate over
    # all three; level 1 has one gate. Expert 2 is selectable only by the shared gate.
    rows = [(0, "click"), (0, "shared"), (1, "click")]
    g = torch.tensor([[[0.6, 0.4, 0.0], [0.3, 0.3, 0.4], [0.2, 0.3, 0.5]]]).repeat(4, 1, 1)
    stats = GateStats(3, 3, pairs=True, top=True)
    stats.update(g)
    assert stats.num_selectable().tolist() == [2, 3, 3]
    assert find_problems(stats, rows, ["e0", "e1", "e2"]) == []
    health = gate_health(stats, rows)
    assert list(health) == ["level0/click", "level0/shared", "level1/click"]
    assert health["level0/click"]["min_utilisation"] == 0.4  # expert 2's zero is not counted
    data = analyse(stats, rows, ["e0", "e1", "e2"], ["click"])
    divergence = data["relatedness"]["gate_divergence"]
    assert math.isnan(divergence[0][2]) and not math.isnan(divergence[0][1])
    assert json.loads(dumps(data))["relatedness"]["gate_divergence"][0][2] is None


def test_dead_expert_needs_every_gate_and_polarised_gate_is_flagged():
    experts = ["e0", "e1", "e2", "e3"]
    g = torch.tensor([[[0.95, 0.03, 0.01, 0.01], [0.30, 0.30, 0.39, 0.01]]])
    stats = GateStats(2, 4)
    stats.update(g)
    problems = {p.key: p.message for p in find_problems(stats, [(0, "a"), (0, "b")], experts)}
    # e3 is below 0.1/4 for both gates; e1 and e2 are used by gate b, so they live.
    assert set(problems) == {("dead", 0, "e3"), ("polarised", 0, "a")}
    assert "model.gate_dropout" in problems[("polarised", 0, "a")]


def test_label_correlation_matches_numpy_on_the_rows_both_tasks_label():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (300, 2)).astype(float)
    y[:, 1] = np.where(rng.random(300) < 0.7, y[:, 0], y[:, 1])
    mask = rng.random((300, 2)) > 0.1
    corr, rows = label_correlation(y, mask)
    both = mask.all(1)
    assert rows[0, 1] == both.sum()
    assert corr[0, 1] == pytest.approx(np.corrcoef(y[both, 0], y[both, 1])[0, 1])


def test_segment_codes_top_values_other_missing_and_numeric_bins():
    codes, names = segment_codes(pa.array(["b", "a", "b", None, "c", "b", "a"]), top=2)
    assert names == ["b", "a", "(other)", "(missing)"]
    assert codes.tolist() == [0, 1, 0, 3, 2, 0, 1]
    codes, names = segment_codes(pa.array(np.arange(100.0)), top=8)
    assert len(names) == 5 and np.bincount(codes).tolist() == [20] * 5


# ---- gate health in training ---------------------------------------------------------------------


def test_every_evaluation_records_gate_health():
    config = {"data": {"source": "synthetic", "num_features": 6, "num_train": 600,
                       "num_valid": 200, "num_test": 100},
              "model": {"name": "mmoe", "num_experts": 3, "expert_hidden": [4],
                        "gate_dropout": 0.1},
              "training": {"epochs": 2, "batch_size": 100}}  # fmt: skip
    run = mmoe.train(config, progress=False)
    assert len(run.history) == 2
    for record in run.history:
        assert set(record["gates"]) == {"y1", "y2"}
        for health in record["gates"].values():
            assert 0 <= health["entropy"] <= 1 and 0 <= health["min_utilisation"] <= 1 / 3
    config["model"] = {"name": "shared_bottom", "bottom_hidden": [4]}
    run = mmoe.train(config, progress=False)
    assert "gates" not in run.history[0]


def test_a_polarised_gate_is_warned_about_once(caplog):
    torch.manual_seed(0)
    model = MMoE(InputSpec((), (), 4), ["y"], num_experts=3, expert_hidden=[4])
    with torch.no_grad():  # the gate ignores its input and sends everything to expert 0
        model.gates.weight.zero_()
        model.gates.bias.copy_(torch.tensor([20.0, 0.0, 0.0]))
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 4, generator=g)
    split = Batch(torch.zeros(128, 0, dtype=torch.long), x, (x[:, :1] > 0).float(),
                  torch.ones(128, 1, dtype=torch.bool))  # fmt: skip
    task = TaskSpec(name="y", column="y", type="binary")
    config = TrainingConfig(epochs=3, learning_rate=1e-6, patience=None)
    trainer = Trainer(model, InMemorySource(split, 64, seed=0), split, [task], config,
                      ("y", "auc"), progress=False)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="mmoe.training"):
        trainer.fit()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("gate 'y' is polarised" in m for m in messages) == 1, messages
    assert sum("expert 'expert1' is dead" in m for m in messages) == 1, messages
    assert len(trainer.state.history) == 3


# ---- the report ----------------------------------------------------------------------------------


def _table(n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    city = rng.choice(["paris", "lyon", "nice", "lille"], n, p=[0.4, 0.3, 0.2, 0.1])
    device = rng.choice(["phone", "desktop"], n)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    click = ((x1 + (city == "paris") + rng.normal(scale=0.5, size=n)) > 0.5).astype(int)
    buy = ((x2 - (device == "phone") + 0.5 * click + rng.normal(scale=0.5, size=n)) > 0).astype(int)
    return pa.table({"city": city, "device": device, "x1": x1, "x2": x2, "click": click,
                     "buy": buy, "age": rng.integers(18, 80, n)})  # fmt: skip


@pytest.fixture(scope="module")
def table_runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gates")
    for name, seed in (("train", 0), ("valid", 1), ("test", 2)):
        pacsv.write_csv(_table(1500 if name == "train" else 400, seed), root / f"{name}.csv")
    runs = {}
    for model in ({"name": "mmoe", "num_experts": 4, "expert_hidden": [8], "tower_hidden": [4]},
                  {"name": "shared_bottom", "bottom_hidden": [8]}):  # fmt: skip
        config = {
            "data": {"source": "table", "train": str(root / "train.csv"),
                     "valid": str(root / "valid.csv"), "test": str(root / "test.csv")},
            "features": {"categorical": ["city", "device"], "numeric": ["x1", "x2"]},
            "tasks": [{"name": "click", "column": "click", "type": "binary"},
                      {"name": "buy", "column": "buy", "type": "binary"}],
            "model": model,
            "training": {"epochs": 2, "batch_size": 100, "learning_rate": 0.01},
        }  # fmt: skip
        runs[model["name"]] = root / model["name"]
        mmoe.train(config, out_dir=runs[model["name"]], progress=False)
    runs["data"] = root
    return runs


@pytest.fixture(scope="module")
def report_dir(table_runs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    mmoe.gates.report(table_runs["mmoe"], "test", by=["city", "age"], out=out, top=3)
    return out


def test_report_files_and_numbers(table_runs, report_dir):
    names = sorted(p.name for p in report_dir.iterdir())
    assert names == ["by_age.png", "by_city.png", "entropy.png", "gate_weights.png",
                     "gates.json", "relatedness.png", "report.html", "utilisation.png"]  # fmt: skip
    data = json.loads((report_dir / "gates.json").read_text(), parse_constant=_no_nan)
    assert data["rows"] == 400 and [g["label"] for g in data["gates"]] == ["click", "buy"]
    for gate in data["gates"]:
        assert sum(gate["mean_weight"].values()) == pytest.approx(1.0, abs=1e-3)
        assert sum(gate["top_share"].values()) == pytest.approx(1.0, abs=1e-3)
    city = data["segments"]["city"]
    assert city["values"] == ["paris", "lyon", "nice", "(other)"] and sum(city["rows"]) == 400
    assert len(data["segments"]["age"]["values"]) == 5  # a numeric column: quantile bins
    test = pacsv.read_csv(table_runs["data"] / "test.csv")
    expected = np.corrcoef(test["click"].to_numpy(), test["buy"].to_numpy())[0, 1]
    assert data["relatedness"]["label_correlation"][0][1] == pytest.approx(expected, abs=1e-4)
    page = (report_dir / "report.html").read_text()
    assert page.count('<img src="data:image/png;base64,') == 6
    assert not re.search(r"(src|href)=\"(https?:|//)", page)  # nothing fetched from a network


def test_cli_prints_a_summary_and_writes_the_same_numbers(table_runs, report_dir, tmp_path, capsys):
    code, stdout, stderr = cli("gates", table_runs["mmoe"], table_runs["data"] / "test.csv",
                               "--by", "city", "--by", "age", "--top", "3", "-o", tmp_path, "-q",
                               capsys=capsys)  # fmt: skip
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert lines[0].startswith("click: expert") and lines[1].startswith("buy: expert")
    assert lines[-1].startswith(f"wrote {tmp_path / 'report.html'}")
    saved = json.loads((report_dir / "gates.json").read_text())
    assert json.loads((tmp_path / "gates.json").read_text())["gates"] == saved["gates"]


def test_python_statistics_without_files_match_the_report(table_runs, report_dir):
    frame = pacsv.read_csv(table_runs["data"] / "test.csv").to_pandas()
    numbers = mmoe.gates.gate_statistics(mmoe.load(table_runs["mmoe"]), frame, by=["city"], top=3)
    saved = json.loads((report_dir / "gates.json").read_text())
    assert numbers["gates"] == saved["gates"]
    assert numbers["segments"]["city"]["mean_weight"] == saved["segments"]["city"]["mean_weight"]


@pytest.mark.parametrize(
    ("make_args", "fragments"),
    [
        (lambda r, t: [str(r["mmoe"]), "test", "--by", "town", "-o", str(t)],
         ["--by column 'town' is not in the table"]),
        (lambda r, t: [str(r["shared_bottom"]), "test", "-o", str(t)],
         ["has no gates", "mmoe or omoe"]),
        (lambda r, t: [str(r["mmoe"]), "test", "-o", str(r["data"] / "test.csv" / "sub")],
         ["cannot write the report to", "pass another -o"]),
        (lambda r, t: [str(r["mmoe"]), "nowhere.csv", "-o", str(t)], ["data file not found"]),
    ],
)  # fmt: skip
def test_errors_are_one_line(table_runs, tmp_path, make_args, fragments, capsys):
    assert_one_line_error(cli("gates", *make_args(table_runs, tmp_path), capsys=capsys), *fragments)


def _no_nan(token: str) -> None:
    raise AssertionError(f"gates.json holds {token}: not strict JSON")


# ---- the page in a real browser ------------------------------------------------------------------

#: Appended to a copy of report.html: after load, the title counts the decoded images.
_COUNT_DECODED = (
    "<script>window.addEventListener('load', () => { const imgs = [...document.images];"
    " document.title = 'decoded ' + imgs.filter(i => i.complete && i.naturalWidth > 0).length"
    " + ' of ' + imgs.length; });</script>"
)


def test_report_renders_in_headless_chromium(report_dir, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        reason = "chromium is not installed (Debian: apt-get install chromium)"
        if os.environ.get("MMOE_REQUIRE_CHROMIUM") == "1":
            pytest.fail(reason + "; MMOE_REQUIRE_CHROMIUM=1 makes this a failure")
        pytest.skip(reason)
    probe = tmp_path / "probe.html"
    page = (report_dir / "report.html").read_text()
    probe.write_text(page.replace("</body>", _COUNT_DECODED + "</body>"))
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert "<title>decoded 6 of 6</title>" in dom, dom[:300]
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, *flags, "--window-size=1200,2400", f"--screenshot={shot}", probe.as_uri()],
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert shot.stat().st_size > 50_000  # a page with figures, not a blank one
