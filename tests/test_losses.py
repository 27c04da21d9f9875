"""Per-task losses with known answers: focal, bce with pos_weight, huber against mse."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mmoe.config import parse_config
from mmoe.errors import ConfigError
from mmoe.specs import TaskSpec
from mmoe.training.losses import MultiTaskLoss, focal_loss_with_logits


def binary(name: str = "b", **options) -> TaskSpec:
    return TaskSpec(name=name, column=name, type="binary", **options)


def regression(name: str = "r", **options) -> TaskSpec:
    return TaskSpec(name=name, column=name, type="regression", **options)


LOGITS = torch.tensor([[-3.0], [-0.5], [0.0], [0.7], [4.0], [2.0]])
LABELS = torch.tensor([[0.0], [1.0], [1.0], [0.0], [1.0], [1.0]])


def test_focal_with_gamma_zero_equals_bce():
    bce, _ = MultiTaskLoss([binary()])(LOGITS, LABELS, None)
    focal, _ = MultiTaskLoss([binary(loss="focal", gamma=0.0)])(LOGITS, LABELS, None)
    assert focal.item() == pytest.approx(bce.item(), rel=1e-6)


def test_focal_known_value_and_default_gamma():
    # z = 0, y = 1: p_t = 1/2, so (1 - p_t)^2 · ln 2 = ln(2) / 4.
    value = focal_loss_with_logits(torch.tensor([0.0]), torch.tensor([1.0]), gamma=2.0)
    assert value.item() == pytest.approx(math.log(2) / 4)
    # gamma defaults to 2 (Lin et al.): the easy, confident rows count less than under bce.
    default, _ = MultiTaskLoss([binary(loss="focal")])(LOGITS, LABELS, None)
    p = torch.sigmoid(LOGITS)
    p_t = torch.where(LABELS == 1, p, 1 - p)
    expected = ((1 - p_t) ** 2 * -torch.log(p_t)).mean()
    assert default.item() == pytest.approx(expected.item(), rel=1e-5)


def test_pos_weight_matches_the_formula():
    total, _ = MultiTaskLoss([binary(pos_weight=5.0)])(LOGITS, LABELS, None)
    p = torch.sigmoid(LOGITS)
    expected = -(5.0 * LABELS * torch.log(p) + (1 - LABELS) * torch.log(1 - p)).mean()
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    # Focal with pos_weight: the positive rows' term is scaled the same way.
    focal, _ = MultiTaskLoss([binary(loss="focal", gamma=0.0, pos_weight=5.0)])(
        LOGITS, LABELS, None
    )
    assert focal.item() == pytest.approx(expected.item(), rel=1e-5)


def test_huber_is_half_mse_for_small_residuals_and_linear_beyond_delta():
    predictions = torch.tensor([[0.1], [-0.3], [0.5]])
    targets = torch.zeros(3, 1)
    mse, _ = MultiTaskLoss([regression()])(predictions, targets, None)
    huber, _ = MultiTaskLoss([regression(loss="huber")])(predictions, targets, None)
    assert huber.item() == pytest.approx(0.5 * mse.item(), rel=1e-6)  # |r| < delta = 1
    far = torch.tensor([[10.0]])
    huber_far, _ = MultiTaskLoss([regression(loss="huber", delta=2.0)])(
        far, torch.zeros(1, 1), None
    )
    assert huber_far.item() == pytest.approx(2.0 * (10.0 - 1.0))  # delta·(|r| - delta/2)


def test_mixed_options_with_mask_and_weights():
    tasks = [binary("a", pos_weight=2.0), regression("b", loss="huber", weight=0.5)]
    logits = torch.tensor([[0.0, 3.0], [1.0, 0.2]])
    labels = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    mask = torch.tensor([[True, True], [True, False]])
    total, per_task = MultiTaskLoss(tasks)(logits, labels, mask)
    a = (2.0 * math.log(2) + F.softplus(torch.tensor(1.0)).item()) / 2
    b = 1.0 * (3.0 - 0.5)  # only the first row counts; |r| = 3 > delta = 1
    assert per_task.tolist() == pytest.approx([a, b], rel=1e-5)
    assert total.item() == pytest.approx(a + 0.5 * b, rel=1e-5)


def test_default_losses_take_the_plain_path():
    assert MultiTaskLoss([binary(), regression()]).plain
    assert not MultiTaskLoss([binary(pos_weight=2.0)]).plain
    assert not MultiTaskLoss([regression(loss="huber")]).plain


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"type": "regression", "loss": "focal"}, "does not apply to a regression task"),
        ({"type": "binary", "loss": "mse"}, "does not apply to a binary task"),
        ({"type": "binary", "gamma": 1.0}, "gamma needs loss: focal"),
        ({"type": "regression", "delta": 1.0}, "delta needs loss: huber"),
        ({"type": "regression", "pos_weight": 2.0}, "pos_weight applies to binary"),
        ({"type": "binary", "standardize": False}, "standardize applies to regression"),
    ],
)
def test_loss_options_are_checked_in_the_config(task, message):
    raw = {
        "data": {"source": "table", "train": "t.csv"},
        "features": {"numeric": ["x"]},
        "tasks": [{"name": "y", "column": "y", **task}],
    }
    with pytest.raises(ConfigError, match=message):
        parse_config(raw)
