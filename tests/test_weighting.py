"""Task weighting strategies with known answers, and exact resume with learned weights."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import mmoe
from mmoe.config import TrainingConfig
from mmoe.data.batch import Batch
from mmoe.data.loaders import InMemorySource
from mmoe.errors import ConfigError
from mmoe.models import MMoE
from mmoe.specs import InputSpec, TaskSpec
from mmoe.training.distributed import DistContext
from mmoe.training.optim import FusedAdam
from mmoe.training.trainer import Trainer
from mmoe.training.weighting import DynamicWeightAverage, GradNorm, make_weighting
from tests.test_resume import Crash, assert_same_weights, resumable_config


def regression(name: str) -> TaskSpec:
    return TaskSpec(name=name, column=name, type="regression")


def test_uncertainty_learns_variances_in_the_ratio_of_the_noise():
    # Two linear targets of the same inputs; noise variances 0.04 and 1.0 (ratio 25).
    g = torch.Generator().manual_seed(0)
    n = 4000
    x = torch.randn(n, 4, generator=g)
    signal = x @ torch.tensor([1.0, -0.5, 0.3, 0.8])
    noise_std = torch.tensor([0.2, 1.0])
    y = signal[:, None] + noise_std * torch.randn(n, 2, generator=g)
    split = Batch(torch.zeros(n, 0, dtype=torch.long), x, y, torch.ones(n, 2, dtype=torch.bool))
    tasks = [regression("quiet"), regression("noisy")]
    config = TrainingConfig(
        epochs=15, batch_size=200, learning_rate=0.02, task_weighting="uncertainty", patience=None
    )
    torch.manual_seed(0)
    model = MMoE(InputSpec((), (), 4), ["quiet", "noisy"], num_experts=2, expert_hidden=[16])
    trainer = Trainer(
        model, InMemorySource(split, 200, 0), split, tasks, config, ("quiet", "mse"),
        progress=False,
    )  # fmt: skip
    result = trainer.fit()
    s = trainer.weighting.log_variance.detach()
    variance = s.exp()  # the learned σ²; its optimum is each task's mean squared error
    mse = [result.history[-1]["valid"][t]["mse"] for t in ("quiet", "noisy")]
    assert variance.tolist() == pytest.approx(mse, rel=0.2)
    ratio = (variance[1] / variance[0]).item()
    assert 25 / 1.5 < ratio < 25 * 1.5, ratio
    # Logged with every evaluation: log-variances and the effective weights ½·exp(-s).
    logged = result.history[-1]["task_weighting"]
    assert logged["strategy"] == "uncertainty"
    assert logged["log_variance"]["noisy"] == pytest.approx(s[1].item())
    assert logged["weights"]["quiet"] == pytest.approx(0.5 * math.exp(-s[0].item()))


def test_dwa_weights_from_a_known_loss_history():
    tasks = [regression(n) for n in ("a", "b", "c")]
    dwa = DynamicWeightAverage(tasks, temperature=2.0)
    epochs = [[1.0, 1.0, 1.0], [0.5, 1.0, 2.0], [0.25, 1.0, 2.0]]  # mean loss of each epoch
    seen = []
    for losses in epochs:
        for _ in range(3):  # three steps with the same losses: the epoch mean is that value
            dwa.combine(torch.tensor(losses))
        seen.append(dwa.weights().tolist())
        dwa.end_epoch(DistContext())
    # Epochs 1 and 2 train with λ = 1; epoch 3 with K·softmax(r / T), r = L(2) / L(1).
    assert seen[:2] == [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    r = torch.tensor([0.5, 1.0, 2.0])
    assert seen[2] == pytest.approx((3 * torch.softmax(r / 2, 0)).tolist())
    r = torch.tensor([0.5, 1.0, 1.0])  # the next epoch's: L(3) / L(2)
    assert dwa.weights().tolist() == pytest.approx((3 * torch.softmax(r / 2, 0)).tolist())
    # The combined loss is Σ λ_k·L_k.
    loss = dwa.combine(torch.tensor([1.0, 2.0, 3.0]))
    assert loss.item() == pytest.approx(float((dwa.weights() * torch.tensor([1.0, 2, 3])).sum()))


def test_gradnorm_moves_weights_to_balanced_gradient_norms():
    # L_k = c_k·f(W): gradient norms c_k·‖∇f‖ balance where w_k ∝ 1/c_k, i.e. w = (0.4, 1.6).
    shared = nn.Parameter(torch.randn(3, 2, generator=torch.Generator().manual_seed(0)))
    tasks = [regression("steep"), regression("flat")]
    gradnorm = GradNorm(tasks, shared, alpha=0.0)
    optimizer = FusedAdam(gradnorm.parameters(), lr=0.02)  # the training loop's Adam
    scale = torch.tensor([4.0, 1.0])
    for _ in range(200):
        losses = scale * (shared**2).sum()
        gradnorm.combine(losses)
        optimizer.zero_grad()
        gradnorm.before_step()
        optimizer.step()
        gradnorm.after_step()
    w = gradnorm.weights().detach()
    assert w.sum().item() == pytest.approx(2.0)  # renormalised to the number of tasks
    assert w.tolist() == pytest.approx([0.4, 1.6], abs=0.03)
    # With alpha > 0 a task whose loss fell less (relative to its start) gets more weight:
    # equal gradients, but the first loss is down to a quarter of its start, the second not.
    gradnorm = GradNorm(tasks, shared, alpha=1.0)
    f = (shared**2).sum()
    gradnorm.combine(torch.stack([f, f]))  # records L(0)
    gradnorm.combine(torch.stack([f - 0.75 * f.detach(), f]))
    assert gradnorm.weight_grad[0] > 0 > gradnorm.weight_grad[1]  # w_steep down, w_flat up


def test_gradnorm_rows_count_only_the_shared_entries():
    # Entries 0 and 1 are each one task's own expert, entry 2 the shared one: the tasks'
    # gradients differ ten-fold on their own entries and are equal on the shared entry.
    shared = nn.Parameter(torch.ones(3, 2))
    tasks = [regression("a"), regression("b")]
    losses = torch.stack([10 * shared[0].sum() + shared[2].sum(),
                          shared[1].sum() + shared[2].sum()])  # fmt: skip
    whole = GradNorm(tasks, shared, alpha=0.0)
    whole.combine(losses)
    assert whole.weight_grad[0] > 0 > whole.weight_grad[1]  # unbalanced on the whole tensor
    rows = GradNorm(tasks, shared, alpha=0.0, rows=slice(2, 3))
    rows.combine(losses)
    assert rows.weight_grad.tolist() == [0.0, 0.0]  # balanced on the shared entry


@pytest.mark.parametrize("name", ["cgc", "ple"])
def test_gradnorm_on_cgc_and_ple_uses_their_shared_experts(name):
    from tests.test_models import synthetic_config

    config = synthetic_config(name, epochs=1, task_weighting="gradnorm")
    run = mmoe.train(config, progress=False)
    model = run.model.model  # the network
    rows = model.shared_layer_rows()
    shared_names = model.expert_names[rows]
    assert shared_names and all(n.startswith("shared") for n in shared_names)
    assert all(not n.startswith("shared") for n in model.expert_names[: rows.start])
    assert run.history[-1]["task_weighting"]["strategy"] == "gradnorm"
    config["model"]["num_shared_experts"] = 0  # tasks share no expert: nothing to balance on
    with pytest.raises(ConfigError, match="shared layer"):
        mmoe.train(config, progress=False)


def test_gradnorm_needs_a_shared_layer_and_one_process():
    tasks = [regression("a")]
    with pytest.raises(ConfigError, match="shared layer"):
        make_weighting("gradnorm", tasks, None)
    with pytest.raises(ConfigError, match="one process"):
        make_weighting("gradnorm", tasks, nn.Parameter(torch.ones(1)), world_size=2)
    assert make_weighting("fixed", tasks) is None


@pytest.mark.parametrize("strategy", ["uncertainty", "dwa", "gradnorm"])
def test_every_strategy_trains_end_to_end(strategy):
    config = resumable_config(task_weighting=strategy)
    config["training"]["epochs"] = 2
    run = mmoe.train(config, progress=False)
    record = run.history[-1]["task_weighting"]
    assert record["strategy"] == strategy and set(record["weights"]) == {"y1", "y2"}
    for task in ("y1", "y2"):
        assert run.metrics["test"][task]["r2"] > 0.5


@pytest.mark.parametrize(("strategy", "crash_at"), [("uncertainty", 31), ("dwa", 117)])
def test_resume_is_bit_identical_with_learned_weighting(tmp_path, monkeypatch, strategy, crash_at):
    # 47 steps per epoch: a crash at step 117 resumes in epoch 3, after DWA's first update.
    config = resumable_config(task_weighting=strategy)
    whole = tmp_path / "whole"
    mmoe.train(config, out_dir=whole, progress=False)
    original = Trainer.train_step

    def dying_step(self, part):
        if self.state.step == crash_at:
            raise Crash
        original(self, part)

    out = tmp_path / "run"
    monkeypatch.setattr(Trainer, "train_step", dying_step)
    with pytest.raises(Crash):
        mmoe.train(config, out_dir=out, progress=False)
    monkeypatch.setattr(Trainer, "train_step", original)
    mmoe.train(config, out_dir=out, progress=False, resume=True)
    assert_same_weights(out, whole)
    records = [
        [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        for d in (whole, out)
    ]
    assert [r["task_weighting"] for r in records[0]] == [r["task_weighting"] for r in records[1]]
    assert [r["valid"] for r in records[0]] == [r["valid"] for r in records[1]]
