"""Multi-gate Mixture-of-Experts (MMoE), Ma et al., KDD 2018, eq. (6)-(7).

    y_k = h_k( f^k(x) ),   f^k(x) = Σ_i g^k(x)_i f_i(x),   g^k(x) = softmax(W_gk x)

``E`` identical MLP experts shared by all tasks; every task ``k`` has its own linear-softmax gate
``g^k`` and tower ``h_k``. The gate weights say how each task divides the input space among the
experts, so they are returned on request as ``(B, T, E)``. Deliberate difference from the paper:
none in the default form; ``gate_hidden`` (an MLP in front of the gate) is an opt-in extension.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from mmoe.config.models import MMoEConfig
from mmoe.layers import Gates, ParallelMLP, mix_experts
from mmoe.models.base import MultiTaskModel
from mmoe.specs import InputSpec


class MMoE(MultiTaskModel):
    """Experts shared by all tasks, one gate and one tower per task.

    Example:
        >>> model = MMoE(InputSpec((), (), 100), ["click", "buy"], num_experts=8)
        >>> logits, gates = model(
        ...     torch.zeros(3, 0, dtype=torch.long), torch.randn(3, 100), return_gates=True)
        >>> logits.shape, gates.shape
        (torch.Size([3, 2]), torch.Size([3, 2, 8]))
    """

    config_class = MMoEConfig
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
        self.gates = Gates(d, self.num_tasks, num_experts, gate_hidden, gate_dropout)
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
        gates = self.gates(x)  # (B, T, E)
        per_task = mix_experts(gates, self.experts(x))  # (B, T, H)
        logits = self.towers(per_task)[..., 0]  # (B, T)
        return (logits, gates) if return_gates else logits
