"""Shared-Bottom (hard parameter sharing; Caruana 1997), the baseline of Ma et al., KDD 2018.

    y_k = h_k(f(x))

One bottom MLP ``f`` shared by every task, one tower ``h_k`` per task. In the paper's synthetic
study the bottom has about 113 units so its parameter count matches MMoE's 8 × 16 experts.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from mmoe.config.models import SharedBottomConfig
from mmoe.layers import ParallelMLP
from mmoe.models.base import MultiTaskModel
from mmoe.specs import InputSpec


class SharedBottom(MultiTaskModel):
    """One shared MLP, then one tower per task.

    Example:
        >>> model = SharedBottom(InputSpec((), (), 100), ["t1", "t2"], bottom_hidden=[113])
        >>> logits = model(torch.zeros(3, 0, dtype=torch.long), torch.randn(3, 100))
        >>> logits.shape
        torch.Size([3, 2])
    """

    config_class = SharedBottomConfig

    def __init__(
        self,
        inputs: InputSpec,
        task_names: Sequence[str],
        bottom_hidden: Sequence[int] = (113,),
        tower_hidden: Sequence[int] = (8,),
        dropout: float = 0.0,
        cross_layers: int = 0,
        cross_rank: int | None = None,
        input_dropout: float = 0.0,
    ) -> None:
        super().__init__(inputs, task_names, cross_layers, cross_rank, input_dropout)
        self.bottom = ParallelMLP(1, inputs.output_dim, bottom_hidden, dropout=dropout)
        self.towers = ParallelMLP(
            self.num_tasks,
            bottom_hidden[-1],
            [*tower_hidden, 1],
            activate_last=False,
            dropout=dropout,
        )

    def shared_layer_weight(self) -> Tensor:
        """The bottom's last layer."""
        return self.bottom.weights[-1]

    def forward(
        self, categorical: Tensor, numeric: Tensor, return_gates: bool = False
    ) -> Tensor | tuple[Tensor, None]:
        x = self.embedding(categorical, numeric)  # (B, D)
        shared = self.bottom(x)[:, 0]  # (B, H)
        logits = self.towers(shared)[..., 0]  # (B, T)
        return (logits, None) if return_gates else logits
