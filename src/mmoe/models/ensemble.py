"""Seed ensembles: ``K`` networks of one architecture, trained with seeds ``s .. s+K-1``.

The ensemble is one ``nn.Module`` whose ``forward`` returns the **mean of the members' logits**
``(B, T)``: it predicts, evaluates and exports as a single graph, exactly like one model.
Averaging logits (not probabilities) keeps regression outputs in their unit and makes the
ensemble a plain sum of members in the exported graph.

Gates: the members' experts are not aligned (expert 3 of one member has nothing to do with
expert 3 of another), so their gates are not averaged. ``forward(..., return_gates=True)``
stacks every member's gates along ``G``: ``(B, K * G_m, E)``, row ``(k, name)`` of
:attr:`gate_rows` being member ``k``'s gate ``name`` (the "level" of a row is the member).

Example:
    >>> from mmoe.models.mmoe import MMoE
    >>> members = [MMoE(InputSpec((), (), 4), ["a", "b"], num_experts=2) for _ in range(3)]
    >>> ens = SeedEnsemble(members)
    >>> z, g = ens(torch.zeros(5, 0, dtype=torch.long), torch.randn(5, 4), return_gates=True)
    >>> tuple(z.shape), tuple(g.shape), ens.gate_rows[2]
    ((5, 2), (5, 6, 2), (1, 'a'))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mmoe.config import RunConfig
from mmoe.models.base import MultiTaskModel
from mmoe.models.registry import build_model
from mmoe.specs import InputSpec


class SeedEnsemble(MultiTaskModel):
    """The mean of the logits of ``K`` members with the same inputs and tasks.

    Args:
        members: trained (or freshly built) networks of one architecture.
    """

    def __init__(self, members: Sequence[MultiTaskModel]) -> None:
        # Not MultiTaskModel.__init__: an ensemble owns no embedding of its own.
        nn.Module.__init__(self)
        assert len(members) >= 1
        first = members[0]
        assert all(m.task_names == first.task_names for m in members)
        self.inputs: InputSpec = first.inputs
        self.task_names = first.task_names
        self.members = nn.ModuleList(members)
        self.config_class = first.config_class
        self.has_gates = first.has_gates  # type: ignore[misc]

    @property
    def gate_rows(self) -> tuple[tuple[int, str], ...]:
        if not self.has_gates:
            return ()
        return tuple((k, name) for k, m in enumerate(self.members) for _, name in m.gate_rows)

    @property
    def expert_names(self) -> tuple[str, ...]:
        return self.members[0].expert_names

    def forward(
        self, categorical: Tensor, numeric: Tensor, return_gates: bool = False
    ) -> Tensor | tuple[Tensor, Tensor | None]:
        if not return_gates:
            return torch.stack([m(categorical, numeric) for m in self.members]).mean(0)
        outs = [m(categorical, numeric, return_gates=True) for m in self.members]
        logits = torch.stack([z for z, _ in outs]).mean(0)  # (B, T)
        gates = [g for _, g in outs]
        if any(g is None for g in gates):
            return logits, None
        return logits, torch.cat(gates, dim=1)  # (B, K * G, E)


def build_run_model(
    config: RunConfig, inputs: InputSpec, task_names: Sequence[str]
) -> MultiTaskModel:
    """The network a run config describes: one model, or a :class:`SeedEnsemble` of
    ``training.ensemble_size`` freshly initialised members (weights are then loaded)."""
    size = config.training.ensemble_size
    if size == 1:
        return build_model(config.model, inputs, task_names)
    return SeedEnsemble([build_model(config.model, inputs, task_names) for _ in range(size)])


__all__ = ["SeedEnsemble", "build_run_model"]
