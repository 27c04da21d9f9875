"""One-gate Mixture-of-Experts (OMoE), the ablation of Ma et al., KDD 2018, §4.

    y_k = h_k( Σ_i g(x)_i f_i(x) ),   g(x) = softmax(W_g x)

``E`` identical MLP experts and one gate shared by every task: all towers read the same mixture.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from mmoe.layers import Gates, InputSpec, ParallelMLP, mix_experts
from mmoe.models.base import MultiTaskModel


class OMoEConfig(BaseModel):
    """Hyper-parameters of :class:`OMoE` (the ``model:`` section of a run config)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["omoe"] = "omoe"
    num_experts: int = Field(default=8, ge=1)
    expert_hidden: list[int] = Field(default=[16], min_length=1)  # widths of each expert MLP
    tower_hidden: list[int] = Field(default=[8])  # hidden widths of each task tower
    gate_hidden: list[int] = Field(default=[])  # empty = the paper's linear gate
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)


class OMoE(MultiTaskModel):
    """Experts mixed by one shared gate, then one tower per task.

    Example:
        >>> model = OMoE(InputSpec((), (), 100), ["t1", "t2"], num_experts=8)
        >>> logits, gates = model.compute(
        ...     torch.zeros(3, 0, dtype=torch.long), torch.randn(3, 100), return_gates=True)
        >>> logits.shape, gates.shape
        (torch.Size([3, 2]), torch.Size([3, 2, 8]))
    """

    has_gates = True

    def __init__(
        self,
        inputs: InputSpec,
        task_names: Sequence[str],
        num_experts: int = 8,
        expert_hidden: Sequence[int] = (16,),
        tower_hidden: Sequence[int] = (8,),
        gate_hidden: Sequence[int] = (),
        dropout: float = 0.0,
    ) -> None:
        super().__init__(inputs, task_names)
        d = inputs.output_dim
        self.experts = ParallelMLP(num_experts, d, expert_hidden, dropout=dropout)
        self.gate = Gates(d, 1, num_experts, gate_hidden)
        self.towers = ParallelMLP(
            self.num_tasks,
            expert_hidden[-1],
            [*tower_hidden, 1],
            activate_last=False,
            dropout=dropout,
        )

    def compute(
        self, categorical: Tensor, numeric: Tensor, return_gates: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        x = self.embedding(categorical, numeric)  # (B, D)
        gate = self.gate(x)  # (B, 1, E)
        mixed = mix_experts(gate, self.experts(x))[:, 0]  # (B, H)
        logits = self.towers(mixed)[..., 0]  # (B, T)
        # Every task reads the same gate; expose it per task for a uniform (B, T, E) shape.
        gates = gate.expand(-1, self.num_tasks, -1) if return_gates else None
        return logits, gates
