"""Metrics and losses against scikit-learn and torch as oracles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import log_loss, roc_auc_score

from mmoe.specs import TaskSpec
from mmoe.training.losses import MultiTaskLoss
from mmoe.training.metrics import is_better, log_loss_from_logits, roc_auc, task_metrics


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    scores = np.round(rng.normal(size=500) + y, 1)  # rounding creates many ties
    assert roc_auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)


def test_auc_of_one_class_is_nan():
    assert np.isnan(roc_auc(np.ones(4), np.arange(4.0)))


def test_log_loss_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    z = rng.normal(size=300) * 3
    expected = log_loss(y, 1 / (1 + np.exp(-z)))
    assert log_loss_from_logits(y, z) == pytest.approx(expected, rel=1e-9)


def test_task_metrics_respect_the_mask():
    tasks = [TaskSpec(name="b", column="b", type="binary"),
             TaskSpec(name="r", column="r", type="regression")]  # fmt: skip
    logits = np.array([[2.0, 1.0], [-1.0, 3.0], [0.5, 10.0]])
    labels = np.array([[1.0, 1.0], [0.0, 2.0], [0.0, 0.0]])
    mask = np.array([[True, True], [True, True], [False, False]])
    m = task_metrics(logits, labels, mask, tasks)
    assert m["b"]["rows"] == 2 and m["b"]["auc"] == 1.0
    assert m["r"]["mse"] == pytest.approx(0.5) and m["r"]["rmse"] == pytest.approx(0.5**0.5)


def test_multitask_loss_equals_torch_losses_per_task():
    tasks = [TaskSpec(name="b", column="b", type="binary", weight=2.0),
             TaskSpec(name="r", column="r", type="regression")]  # fmt: skip
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 2, generator=g)
    labels = torch.stack([torch.randint(0, 2, (50,), generator=g).float(),
                          torch.randn(50, generator=g)], dim=1)  # fmt: skip
    mask = torch.rand(50, 2, generator=g) > 0.3
    total, per_task = MultiTaskLoss(tasks)(logits, labels, mask)
    bce = F.binary_cross_entropy_with_logits(logits[mask[:, 0], 0], labels[mask[:, 0], 0])
    mse = F.mse_loss(logits[mask[:, 1], 1], labels[mask[:, 1], 1])
    assert torch.allclose(per_task, torch.stack([bce, mse]))
    assert torch.allclose(total, 2.0 * bce + mse)


def test_is_better():
    assert is_better("auc", 0.8, 0.7) and not is_better("auc", 0.7, 0.8)
    assert is_better("mse", 0.1, 0.2) and not is_better("logloss", 0.3, 0.2)
    assert is_better("auc", 0.5, None) and not is_better("auc", float("nan"), 0.1)


def test_multitask_loss_without_mask_equals_an_all_true_mask():
    tasks = [TaskSpec(name="b", column="b", type="binary"),
             TaskSpec(name="r", column="r", type="regression")]  # fmt: skip
    g = torch.Generator().manual_seed(1)
    logits, labels = torch.randn(20, 2, generator=g), torch.rand(20, 2, generator=g).round()
    loss = MultiTaskLoss(tasks)
    full = loss(logits, labels, torch.ones(20, 2, dtype=torch.bool))
    assert all(torch.allclose(a, b) for a, b in zip(full, loss(logits, labels, None), strict=True))
