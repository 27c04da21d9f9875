"""Shared-Bottom (hard parameter sharing; Caruana 1997), the baseline of Ma et al., KDD 2018.

    y_k = h_k(f(x))

One bottom MLP ``f`` shared by every task, one tower ``h_k`` per task. In the paper's synthetic
study the bottom has about 113 units so its parameter count matches MMoE's 8 × 16 experts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from mmoe.layers import InputSpec, ParallelMLP
from mmoe.models.base import MultiTaskModel


class SharedBottomConfig(BaseModel):
    """Hyper-parameters of :class:`SharedBottom` (the ``model:`` section of a run config)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["shared_bottom"] = "shared_bottom"
    bottom_hidden: list[int] = Field(default=[113], min_length=1)  # widths of the shared MLP
    tower_hidden: list[int] = Field(default=[8])  # hidden widths of each task tower
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)  # after each hidden ReLU


class SharedBottom(MultiTaskModel):
    """One shared MLP, then one tower per task.

    Example:
        >>> model = SharedBottom(InputSpec((), (), 100), ["t1", "t2"], bottom_hidden=[113])
        >>> logits, _ = model.compute(torch.zeros(3, 0, dtype=torch.long), torch.randn(3, 100))
        >>> logits.shape
        torch.Size([3, 2])
    """

    def __init__(
        self,
        inputs: InputSpec,
        task_names: Sequence[str],
        bottom_hidden: Sequence[int] = (113,),
        tower_hidden: Sequence[int] = (8,),
        dropout: float = 0.0,
    ) -> None:
        super().__init__(inputs, task_names)
        self.bottom = ParallelMLP(1, inputs.output_dim, bottom_hidden, dropout=dropout)
        self.towers = ParallelMLP(
            self.num_tasks,
            bottom_hidden[-1],
            [*tower_hidden, 1],
            activate_last=False,
            dropout=dropout,
        )

    def compute(
        self, categorical: Tensor, numeric: Tensor, return_gates: bool = False
    ) -> tuple[Tensor, None]:
        x = self.embedding(categorical, numeric)  # (B, D)
        shared = self.bottom(x)[:, 0]  # (B, H)
        return self.towers(shared)[..., 0], None  # (B, T)
