"""Seed ensembles (``mmoe train --seeds K``), the cross layer and the dropout options."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

import mmoe
from mmoe.config import parse_config
from mmoe.data.sources import load_splits
from mmoe.layers import CrossNetwork, EnrichedEmbedding, FeatureEmbedding, ParallelMLP
from mmoe.models import MMoE
from mmoe.models.ensemble import SeedEnsemble
from mmoe.specs import InputSpec
from tests.test_cli import assert_one_line_error, cli

SYNTHETIC = {
    "data": {"source": "synthetic", "num_features": 6, "num_train": 600, "num_valid": 200,
             "num_test": 200, "num_sines": 1, "seed": 2},
    "model": {"name": "mmoe", "num_experts": 3, "expert_hidden": [8], "tower_hidden": [4],
              "cross_layers": 1, "cross_rank": 2},
    "training": {"epochs": 2, "batch_size": 64, "learning_rate": 0.01, "seed": 3},
}  # fmt: skip


def test_ensemble_is_the_mean_of_its_members_and_reloads_exactly(tmp_path):
    config = {**SYNTHETIC, "training": {**SYNTHETIC["training"], "ensemble_size": 2}}
    run = mmoe.train(config, out_dir=tmp_path / "ens", progress=False)
    model = run.model.model
    assert isinstance(model, SeedEnsemble) and len(model.members) == 2
    metrics = json.loads((tmp_path / "ens" / "metrics.json").read_text())
    assert [m["seed"] for m in metrics["members"]] == [3, 4]
    # Each member is the single run of its seed, bit for bit.
    single = mmoe.train({**SYNTHETIC, "training": {**SYNTHETIC["training"], "seed": 4}},
                        progress=False)  # fmt: skip
    assert metrics["members"][1]["test"] == single.metrics["test"]
    test = load_splits(parse_config(config).data).test
    loaded = mmoe.load(tmp_path / "ens")
    assert isinstance(loaded.model, SeedEnsemble)
    z = loaded.predict_logits(test)
    members = [
        mmoe.TrainedModel(run.model.config, run.model.preprocessor, m).predict_logits(test)
        for m in model.members
    ]
    assert np.allclose(z, np.mean(members, axis=0), atol=1e-6)
    assert np.array_equal(z, run.model.predict_logits(test))
    gates = loaded.gate_weights(test)
    assert gates.shape == (200, 4, 3)  # members' gates stacked: (N, K * T, E)
    assert loaded.model.gate_rows == ((0, "y1"), (0, "y2"), (1, "y1"), (1, "y2"))


def test_cli_seeds_trains_an_ensemble_and_predict_uses_it(census_config_raw, tmp_path, capsys):
    raw = {**census_config_raw, "training": {**census_config_raw["training"], "epochs": 1}}
    config = tmp_path / "g1.yaml"
    config.write_text(yaml.safe_dump(raw))
    code, out, err = cli("train", config, "--seeds", "2", "--out", tmp_path / "run", "-q",
                         capsys=capsys)  # fmt: skip
    assert code == 0, err
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["training"]["ensemble_size"] == 2
    code, out, err = cli("evaluate", tmp_path / "run", "test", "--json", capsys=capsys)
    assert code == 0, err
    assert set(json.loads(out)) == {"income", "marital"}
    assert_one_line_error(
        cli("train", config, "--seeds", "2", "--out", tmp_path / "run", "--resume", "-q",
            capsys=capsys),
        "cannot be resumed",
    )  # fmt: skip


def test_cross_network_follows_the_dcn_v2_formula():
    torch.manual_seed(0)
    full = CrossNetwork(dim=5, layers=2)
    x0 = torch.randn(4, 5)
    x = x0
    for w, b in zip(full.weights, full.biases, strict=True):
        x = x0 * (x @ w + b) + x
    assert torch.allclose(full(x0), x, atol=1e-6)
    # Low rank: W = V U with V (D, r), U (r, D) gives the same map as a full matrix.
    low = CrossNetwork(dim=5, layers=1, rank=2)
    w = low.weights[0] @ low.weights[1]
    assert torch.allclose(low(x0), x0 * (x0 @ w + low.biases[0]) + x0, atol=1e-6)
    assert sum(p.numel() for p in low.parameters()) == 5 * 2 * 2 + 5


def test_default_model_keeps_the_plain_embedding_and_options_switch_the_block_on():
    spec = InputSpec((5,), (4,), 3)
    plain = MMoE(spec, ["a"], num_experts=2)
    assert type(plain.embedding) is FeatureEmbedding
    crossed = MMoE(spec, ["a"], num_experts=2, cross_layers=2, input_dropout=0.2)
    assert isinstance(crossed.embedding, EnrichedEmbedding)
    names = [n for n, _ in crossed.named_parameters()]
    assert "embedding.tables.0" in names and "embedding.cross.weights.1" in names


def test_dropout_reaches_single_layer_experts():
    torch.manual_seed(0)
    experts = ParallelMLP(n=4, in_dim=6, hidden=[32], dropout=0.5)
    x = torch.randn(64, 6)
    experts.eval()
    clean = experts(x)
    experts.train()
    dropped = experts(x)
    active = clean > 0
    # About half of the active outputs are zeroed; the rest are scaled by 1 / (1 - p).
    zeroed = (dropped[active] == 0).float().mean().item()
    assert 0.4 < zeroed < 0.6
    kept = dropped[active] != 0
    assert torch.allclose(dropped[active][kept], 2 * clean[active][kept])
    tower = ParallelMLP(n=2, in_dim=6, hidden=[1], activate_last=False, dropout=0.5).train()
    assert torch.equal(tower(x), tower(x))  # a logit layer has no dropout


@pytest.mark.parametrize("name", ["shared_bottom", "omoe"])
def test_every_architecture_takes_the_input_block_options(name):
    config = {**SYNTHETIC, "model": {"name": name, "cross_layers": 1, "input_dropout": 0.1}}
    run = mmoe.train({**config, "training": {**SYNTHETIC["training"], "epochs": 1}},
                     progress=False)  # fmt: skip
    assert isinstance(run.model.model.embedding, EnrichedEmbedding)
