"""Per-task losses, masked, and their weighted sum.

Each task's loss is chosen in its spec (``loss:``): ``bce`` (the default of binary tasks,
optionally with ``pos_weight`` for rare positives), ``focal`` (Lin et al., ICCV 2017, with
``gamma``), ``mse`` (the default of regression tasks) or ``huber`` (with ``delta``). With the
defaults everywhere, the loss runs the same few tensor operations it always did (one BCE or
squared error over the whole ``(B, T)`` block): the hot path pays nothing for the options.

Elementwise, with ``z`` the logit (or predicted value), ``y`` the label, ``p = sigmoid(z)``::

    bce    -(w·y·log p + (1 - y)·log(1 - p))               w = pos_weight (1 by default)
    focal  (1 - p_t)^gamma · bce,  p_t = p if y = 1 else 1 - p   (gamma = 0 gives bce)
    mse    (z - y)²
    huber  ½(z - y)² if |z - y| <= delta, else delta·(|z - y| - ½·delta)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmoe.specs import TaskSpec

#: Focal loss ``gamma`` and huber ``delta`` when the task spec leaves them out.
DEFAULT_GAMMA = 2.0
DEFAULT_DELTA = 1.0


def focal_loss_with_logits(
    logits: Tensor, labels: Tensor, gamma: float, pos_weight: Tensor | None = None
) -> Tensor:
    """Elementwise focal loss ``(1 - p_t)^gamma · bce`` of logits and 0/1 labels.

    ``p_t`` is the probability the model gives the true class; ``exp(-bce)`` computes it stably
    from the unweighted cross-entropy. ``pos_weight`` scales the positive term as in
    ``binary_cross_entropy_with_logits``.

    Example:
        >>> z, y = torch.tensor([2.0, -1.0]), torch.tensor([1.0, 1.0])
        >>> bce = F.binary_cross_entropy_with_logits(z, y, reduction="none")
        >>> torch.allclose(focal_loss_with_logits(z, y, gamma=0.0), bce)
        True
        >>> focal_loss_with_logits(z, y, gamma=2.0) < bce  # the easy row is down-weighted most
        tensor([True, True])
    """
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    p_t = torch.exp(-bce)
    if pos_weight is not None:
        bce = bce * (1.0 + (pos_weight - 1.0) * labels)
    return (1.0 - p_t).pow(gamma) * bce


class MultiTaskLoss(nn.Module):
    """Masked mean loss of every task and their weighted sum.

    Rows whose label is missing for a task (``mask`` false) are left out of that task's mean.

    Example:
        >>> loss = MultiTaskLoss([TaskSpec(name="a", column="a", type="binary"),
        ...                       TaskSpec(name="b", column="b", type="regression", weight=0.5)])
        >>> total, per_task = loss(torch.zeros(2, 2), torch.tensor([[1., 2.], [0., 4.]]),
        ...                        torch.tensor([[True, True], [True, False]]))
        >>> [round(v, 4) for v in per_task.tolist()], round(total.item(), 4)
        ([0.6931, 4.0], 2.6931)
    """

    def __init__(self, tasks: Sequence[TaskSpec]) -> None:
        super().__init__()
        binary = [t.type == "binary" for t in tasks]
        self.register_buffer("is_binary", torch.tensor(binary), persistent=False)
        self.register_buffer(
            "weights",
            torch.tensor([t.weight for t in tasks], dtype=torch.float32),
            persistent=False,
        )
        self.all_binary = all(binary)
        self.any_binary = any(binary)
        # Any option beyond plain bce / mse sends the loss down the per-task path.
        self.plain = all(t.loss_name in ("bce", "mse") and t.pos_weight is None for t in tasks)
        self.tasks = list(tasks)
        self.register_buffer(
            "pos_weight",
            torch.tensor([t.pos_weight or 1.0 for t in tasks], dtype=torch.float32),
            persistent=False,
        )

    def forward(
        self,
        logits: Tensor,
        labels: Tensor,
        mask: Tensor | None,
        denominators: Tensor | None = None,
        weights: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Total loss and per-task losses ``(T,)`` of ``(B, T)`` logits, labels and bool mask.

        ``mask=None`` means every label is present (it skips the masking arithmetic).
        ``denominators`` ``(T,)``: divide each task's summed loss by these counts instead of by
        the rows present here. Under data parallelism a rank holds part of a global batch; with
        the global batch's label counts its loss is its share of the global mean.
        ``weights`` ``(B,)``: per-row sample weights; each task's loss is then the weighted mean
        over its labelled rows (``denominators`` are then sums of weights). ``None``: the same
        operations as without weights.
        """
        if not self.plain:
            elem = self.elementwise(logits, labels)
        elif self.all_binary:
            elem = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        elif not self.any_binary:
            elem = (logits - labels).square()
        else:
            bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
            elem = torch.where(self.is_binary, bce, (logits - labels).square())
        if weights is not None:
            row = weights.to(elem.dtype).unsqueeze(1)  # (B, 1)
            present = row if mask is None else mask.to(elem.dtype) * row  # (B, T)
            summed = (elem * present).sum(0)
            if denominators is None:
                denominators = present.sum(0)
            per_task = summed / denominators.clamp(min=torch.finfo(elem.dtype).tiny)  # (T,)
            return (per_task * self.weights).sum(), per_task
        if denominators is not None:
            summed = elem.sum(0) if mask is None else (elem * mask.to(elem.dtype)).sum(0)
            per_task = summed / denominators.clamp(min=1.0)  # (T,)
        elif mask is None:
            per_task = elem.mean(0)  # (T,)
        else:
            weight = mask.to(elem.dtype)
            per_task = (elem * weight).sum(0) / weight.sum(0).clamp(min=1.0)  # (T,)
        return (per_task * self.weights).sum(), per_task

    def elementwise(self, logits: Tensor, labels: Tensor) -> Tensor:
        """``(B, T)`` loss of every row and task, each task with its own loss (see module doc)."""
        columns = []
        for k, task in enumerate(self.tasks):
            z, y = logits[:, k], labels[:, k]
            name = task.loss_name
            pos_weight = None if task.pos_weight is None else self.pos_weight[k]
            if name == "bce":
                columns.append(
                    F.binary_cross_entropy_with_logits(
                        z, y, reduction="none", pos_weight=pos_weight
                    )
                )
            elif name == "focal":
                gamma = DEFAULT_GAMMA if task.gamma is None else task.gamma
                columns.append(focal_loss_with_logits(z, y, gamma, pos_weight))
            elif name == "mse":
                columns.append((z - y).square())
            else:
                delta = DEFAULT_DELTA if task.delta is None else task.delta
                columns.append(F.huber_loss(z, y, reduction="none", delta=delta))
        return torch.stack(columns, dim=1)


__all__ = ["DEFAULT_DELTA", "DEFAULT_GAMMA", "MultiTaskLoss", "focal_loss_with_logits"]
