"""Per-task losses: BCE-with-logits for binary tasks, squared error for regression, masked."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmoe.specs import TaskSpec


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
        if self.all_binary:
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
