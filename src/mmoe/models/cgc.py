"""Customized Gate Control (CGC), Tang et al., RecSys 2020, §4.2 (one extraction network).

    g^k(x) = w^k(x) S^k(x),   w^k(x) = softmax(W_k x),   y^k = t^k(g^k(x))

Every task ``k`` owns ``m_t`` experts; ``m_s`` experts are shared. ``S^k(x)`` stacks task ``k``'s
own experts and the shared experts, so task ``k``'s gate mixes exactly those ``m_t + m_s``
outputs and never another task's experts. One tower ``t^k`` per task reads the fused vector.

:class:`ExtractionLevel` is one such network; PLE (:mod:`mmoe.models.ple`) stacks several, with a
shared gate over all experts on every level but the last. CGC is PLE with one level.

Batched like MMoE: all ``T * m_t + m_s`` experts of a level are one :class:`ParallelMLP`, the
task gates one :class:`Gates`, the mixing one ``bmm``. Each task gate's softmax runs over its
own experts only; its weights are then scattered into a row over all experts of the level with
exact zeros for the experts it does not select, which is both the mixing matrix and what
``return_gates=True`` returns (see :attr:`MultiTaskModel.gate_rows`).

Deliberate difference from the paper: none in the default form; ``gate_hidden`` (an MLP in front
of each gate) is an opt-in extension, as for MMoE.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmoe.config.models import CGCConfig
from mmoe.layers import Gates, ParallelMLP, mix_experts
from mmoe.models.base import MultiTaskModel
from mmoe.specs import InputSpec


class ExtractionLevel(nn.Module):
    """One extraction network: task and shared experts, task gates, and optionally a shared gate.

    Experts are ordered task by task (task 0's ``m_t`` experts, then task 1's, ...), then the
    ``m_s`` shared experts: ``E = T * m_t + m_s``. Input ``(B, D)`` is read by every expert and
    gate (the first level). Input ``(B, T + 1, D)`` holds one vector per group (the previous
    level's output): task ``k``'s experts and gate read row ``k``, the shared experts and the
    shared gate read row ``T``.

    Output: fused vectors ``(B, G, H)`` and gates ``(B, G, E)``, ``G = T + 1`` with a shared gate
    (its row last) and ``G = T`` without one.

    Args:
        in_dim: input width ``D``.
        num_tasks: ``T``.
        num_task_experts: ``m_t``, experts per task.
        num_shared_experts: ``m_s``.
        expert_hidden: layer widths of every expert; ``H = expert_hidden[-1]``.
        gate_hidden: hidden layers in front of each gate (empty: the paper's linear gate).
        dropout: after each hidden ReLU of the experts.
        gate_dropout: drop each selected expert's gate weight with this probability in training
            and renormalise (``layers.gate_dropout``); 0 turns it off.
        shared_gate: add the shared gate over all ``E`` experts (PLE's non-final levels).

    Example:
        >>> level = ExtractionLevel(10, num_tasks=2, num_task_experts=1, num_shared_experts=2,
        ...                         expert_hidden=[4], shared_gate=True)
        >>> fused, gates = level(torch.randn(3, 10))
        >>> fused.shape, gates.shape
        (torch.Size([3, 3, 4]), torch.Size([3, 3, 4]))
        >>> gates[0, 0].tolist()[1] == 0.0  # task 0's gate never selects task 1's expert
        True
    """

    def __init__(
        self,
        in_dim: int,
        num_tasks: int,
        num_task_experts: int,
        num_shared_experts: int,
        expert_hidden: Sequence[int],
        gate_hidden: Sequence[int] = (),
        dropout: float = 0.0,
        shared_gate: bool = False,
        gate_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        assert num_task_experts + num_shared_experts >= 1, "a gate needs at least one expert"
        self.num_tasks = num_tasks
        self.num_task_experts = num_task_experts
        self.num_shared_experts = num_shared_experts
        num_experts = num_tasks * num_task_experts + num_shared_experts
        self.num_experts = num_experts
        self.experts = ParallelMLP(num_experts, in_dim, expert_hidden, dropout=dropout)
        # Which input row each expert reads: its task's, or row T for the shared experts.
        group = [k for k in range(num_tasks) for _ in range(num_task_experts)]
        group += [num_tasks] * num_shared_experts
        self.register_buffer("expert_group", torch.tensor(group), persistent=False)
        # Task k's gate selects its own experts, then the shared ones: (T, m_t + m_s).
        shared = list(range(num_tasks * num_task_experts, num_experts))
        selected = [
            [k * num_task_experts + i for i in range(num_task_experts)] + shared
            for k in range(num_tasks)
        ]
        self.register_buffer("task_selection", torch.tensor(selected), persistent=False)
        self.task_gates = Gates(in_dim, num_tasks, len(selected[0]), gate_hidden, gate_dropout)
        # Nothing reads the shared gate's output when no shared expert follows it.
        self.shared_gate = (
            Gates(in_dim, 1, num_experts, gate_hidden, gate_dropout)
            if shared_gate and num_shared_experts > 0
            else None
        )

    @property
    def shared_rows(self) -> slice:
        """The shared experts' entries along the experts' first dimension (after the task ones)."""
        return slice(self.num_tasks * self.num_task_experts, self.num_experts)

    @property
    def num_gates(self) -> int:
        return self.num_tasks + (self.shared_gate is not None)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        num_tasks = self.num_tasks
        if x.dim() == 2:  # every expert and gate reads the same input
            experts = self.experts(x)  # (B, E, H)
            task_gates = self.task_gates(x)  # (B, T, m_t + m_s)
            shared_input = x
        else:  # (B, T + 1, D): one row per group
            experts = self.experts(x.index_select(1, self.expert_group))  # (B, E, H)
            task_gates = self.task_gates(x[:, :num_tasks])  # (B, T, m_t + m_s)
            # Row T exists only when the previous level has shared experts (and a shared gate).
            shared_input = x[:, num_tasks] if self.shared_gate is not None else x
        # Each task's weights placed over all E experts, exact zeros for the unselected ones.
        index = self.task_selection.expand(x.shape[0], -1, -1)  # (B, T, m_t + m_s)
        zeros = task_gates.new_zeros(x.shape[0], num_tasks, self.num_experts)
        gates = zeros.scatter(2, index, task_gates)  # (B, T, E)
        if self.shared_gate is not None:
            gates = torch.cat([gates, self.shared_gate(shared_input)], dim=1)  # (B, T + 1, E)
        return mix_experts(gates, experts), gates  # (B, G, H), (B, G, E)


class CGC(MultiTaskModel):
    """Task-specific and shared experts, one customized gate and one tower per task.

    Example:
        >>> model = CGC(InputSpec((), (), 100), ["click", "buy"], num_shared_experts=2,
        ...             num_task_experts=1)
        >>> logits, gates = model(
        ...     torch.zeros(3, 0, dtype=torch.long), torch.randn(3, 100), return_gates=True)
        >>> logits.shape, gates.shape, model.expert_names
        (torch.Size([3, 2]), torch.Size([3, 2, 4]), ('click/0', 'buy/0', 'shared0', 'shared1'))
    """

    config_class = CGCConfig
    has_gates = True

    def __init__(
        self,
        inputs: InputSpec,
        task_names: Sequence[str],
        num_shared_experts: int = 4,
        num_task_experts: int = 2,
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
        self.level = ExtractionLevel(
            inputs.output_dim,
            self.num_tasks,
            num_task_experts,
            num_shared_experts,
            expert_hidden,
            gate_hidden,
            dropout,
            gate_dropout=gate_dropout,
        )
        self.towers = task_towers(self.num_tasks, expert_hidden[-1], tower_hidden, dropout)

    @property
    def gate_rows(self) -> tuple[tuple[int, str], ...]:
        return tuple((0, task) for task in self.task_names)

    @property
    def expert_names(self) -> tuple[str, ...]:
        return expert_names(self.task_names, self.level)

    def shared_layer_weight(self) -> Tensor | None:
        """The experts' last layer, stacked (``None`` without shared experts).

        Only the shared experts' entries (:meth:`shared_layer_rows`) are shared by all tasks.
        """
        return self.level.experts.weights[-1] if self.level.num_shared_experts else None

    def shared_layer_rows(self) -> slice:
        return self.level.shared_rows

    def forward(
        self, categorical: Tensor, numeric: Tensor, return_gates: bool = False
    ) -> Tensor | tuple[Tensor, Tensor | None]:
        x = self.embedding(categorical, numeric)  # (B, D)
        fused, gates = self.level(x)  # (B, T, H), (B, T, E)
        logits = self.towers(fused)[..., 0]  # (B, T)
        return (logits, gates) if return_gates else logits


def task_towers(
    num_tasks: int, in_dim: int, tower_hidden: Sequence[int], dropout: float
) -> ParallelMLP:
    """One tower per task ending in a logit: ``(B, T, in_dim) → (B, T, 1)``."""
    return ParallelMLP(num_tasks, in_dim, [*tower_hidden, 1], activate_last=False, dropout=dropout)


def expert_names(task_names: Sequence[str], level: ExtractionLevel) -> tuple[str, ...]:
    """``task/i`` for every task's experts, then ``shared0``, ``shared1``, ... (level order)."""
    own = [f"{task}/{i}" for task in task_names for i in range(level.num_task_experts)]
    return (*own, *(f"shared{j}" for j in range(level.num_shared_experts)))
