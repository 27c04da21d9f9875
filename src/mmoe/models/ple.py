"""Progressive Layered Extraction (PLE), Tang et al., RecSys 2020, §4.3.

    g^{k,j}(x) = w^{k,j}(g^{k,j-1}(x)) S^{k,j}(g^{k,j-1}(x)),   y^k = t^k(g^{k,N}(x))

``N`` extraction levels (:class:`~mmoe.models.cgc.ExtractionLevel`) are stacked. On every level
task ``k``'s gate mixes task ``k``'s experts and the shared experts, as in CGC; every level but
the last also has a shared gate over *all* its experts. The next level's task-``k`` experts and
gate read task ``k``'s fused vector ``g^{k,j-1}``, and its shared experts and shared gate read the
shared gate's fused vector ``g^{s,j-1}``; the first level reads the input ``x`` everywhere. The
last level has only task gates, and tower ``t^k`` reads ``g^{k,N}``. One level is CGC.

Every level has the same expert counts, so ``return_gates=True`` stacks the levels' gates along
``G``: level 0's task gates, its shared gate, level 1's task gates, ... (see :attr:`gate_rows`),
each row over the level's ``E`` experts with exact zeros where the gate does not select.

Deliberate difference from the paper: none in the default form; the paper allows different
expert counts per level, here they are equal so the gates of all levels share one tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmoe.config.models import PLEConfig
from mmoe.models.base import MultiTaskModel
from mmoe.models.cgc import ExtractionLevel, expert_names, task_towers
from mmoe.specs import InputSpec


class PLE(MultiTaskModel):
    """Stacked extraction levels of task and shared experts, then one tower per task.

    Example:
        >>> model = PLE(InputSpec((), (), 100), ["click", "buy"], num_levels=2,
        ...             num_shared_experts=2, num_task_experts=1)
        >>> logits, gates = model(
        ...     torch.zeros(3, 0, dtype=torch.long), torch.randn(3, 100), return_gates=True)
        >>> logits.shape, gates.shape  # 3 gates on level 0 (2 tasks + shared), 2 on level 1
        (torch.Size([3, 2]), torch.Size([3, 5, 4]))
        >>> model.gate_rows
        ((0, 'click'), (0, 'buy'), (0, 'shared'), (1, 'click'), (1, 'buy'))
    """

    config_class = PLEConfig
    has_gates = True

    def __init__(
        self,
        inputs: InputSpec,
        task_names: Sequence[str],
        num_levels: int = 2,
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
        assert num_levels >= 1
        widths = [inputs.output_dim] + [expert_hidden[-1]] * (num_levels - 1)
        self.levels = nn.ModuleList(
            ExtractionLevel(
                width,
                self.num_tasks,
                num_task_experts,
                num_shared_experts,
                expert_hidden,
                gate_hidden,
                dropout,
                shared_gate=j < num_levels - 1,
                gate_dropout=gate_dropout,
            )
            for j, width in enumerate(widths)
        )
        self.towers = task_towers(self.num_tasks, expert_hidden[-1], tower_hidden, dropout)

    @property
    def gate_rows(self) -> tuple[tuple[int, str], ...]:
        rows: list[tuple[int, str]] = []
        for j, level in enumerate(self.levels):
            rows += [(j, task) for task in self.task_names]
            if level.shared_gate is not None:
                rows.append((j, "shared"))
        return tuple(rows)

    @property
    def expert_names(self) -> tuple[str, ...]:
        return expert_names(self.task_names, self.levels[0])

    def shared_layer_weight(self) -> Tensor | None:
        """The last level's experts' last layer, stacked (``None`` without shared experts).

        Only its shared experts' entries (:meth:`shared_layer_rows`) are shared by all tasks.
        """
        last = self.levels[-1]
        return last.experts.weights[-1] if last.num_shared_experts else None

    def shared_layer_rows(self) -> slice:
        return self.levels[-1].shared_rows

    def forward(
        self, categorical: Tensor, numeric: Tensor, return_gates: bool = False
    ) -> Tensor | tuple[Tensor, Tensor | None]:
        h = self.embedding(categorical, numeric)  # (B, D)
        gates = []
        for level in self.levels:
            # (B, T + 1, H) between levels: row k task k's fused vector, row T the shared one;
            # (B, T, H) after the last level.
            h, level_gates = level(h)
            gates.append(level_gates)  # (B, G_j, E)
        logits = self.towers(h[:, : self.num_tasks])[..., 0]  # (B, T)
        if not return_gates:
            return logits
        return logits, torch.cat(gates, dim=1) if len(gates) > 1 else gates[0]
