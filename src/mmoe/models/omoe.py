"""One-gate Mixture-of-Experts (OMoE), the ablation of Ma et al., KDD 2018, §4.

    y_k = h_k( Σ_i g(x)_i f_i(x) ),   g(x) = softmax(W_g x)

``E`` identical MLP experts and one gate shared by every task: all towers read the same mixture.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from mmoe.config.models import OMoEConfig
from mmoe.layers import Gates, ParallelMLP, mix_experts
from mmoe.models.base import MultiTaskModel
from mmoe.specs import InputSpec


class OMoE(MultiTaskModel):
    """Experts mixed by one shared gate, then one tower per task.

    Example:
        >>> model = OMoE(InputSpec((), (), 100), ["t1", "t2"], num_experts=8)
        >>> logits, gates = model(
        ...     torch.zeros(3, 0, dtype=torch.long), torch.randn(3, 100), return_gates=True)
        >>> logits.shape, gates.shape
        (torch.Size([3, 2]), torch.Size([3, 2, 8]))
    """

    config_class = OMoEConfig
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
        cross_layers: int = 0,
        cross_rank: int | None = None,
        input_dropout: float = 0.0,
        gate_dropout: float = 0.0,
    ) -> None:
        super().__init__(inputs, task_names, cross_layers, cross_rank, input_dropout)
        d = inputs.output_dim
        self.experts = ParallelMLP(num_experts, d, expert_hidden, dropout=dropout)
        self.gate = Gates(d, 1, num_experts, gate_hidden, gate_dropout)
        self.towers = ParallelMLP(
            self.num_tasks,
            expert_hidden[-1],
            [*tower_hidden, 1],
            activate_last=False,
            dropout=dropout,
        )

    @property
    def expert_names(self) -> tuple[str, ...]:
        return tuple(f"expert{i}" for i in range(self.experts.n))

    def shared_layer_weight(self) -> Tensor:
        """The experts' last layer (all experts, stacked)."""
        return self.experts.weights[-1]

    def forward(
        self, categorical: Tensor, numeric: Tensor, return_gates: bool = False
    ) -> Tensor | tuple[Tensor, Tensor | None]:
        x = self.embedding(categorical, numeric)  # (B, D)
        gate = self.gate(x)  # (B, 1, E)
        mixed = mix_experts(gate, self.experts(x))[:, 0]  # (B, H)
        logits = self.towers(mixed)[..., 0]  # (B, T)
        if not return_gates:
            return logits
        # Every task reads the same gate; expose it per task for a uniform (B, T, E) shape.
        return logits, gate.expand(-1, self.num_tasks, -1)
