"""What every architecture shares: inputs, task names and the ``forward`` contract."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from mmoe.data.batch import Batch
from mmoe.layers import FeatureEmbedding, InputSpec


class MultiTaskModel(nn.Module):
    """Base class: embeds the inputs, and maps ``compute``'s logits to ``{task: logits[B]}``.

    Subclasses implement :meth:`compute`. Models return logits; the sigmoid of a binary task is
    applied only by the loss, by prediction and by export (DESIGN.md §4).
    """

    #: Whether :meth:`compute` can return gate weights (false for Shared-Bottom).
    has_gates: bool = False

    def __init__(self, inputs: InputSpec, task_names: Sequence[str]) -> None:
        super().__init__()
        assert len(task_names) >= 1, "a model needs at least one task"
        assert len(set(task_names)) == len(task_names), "task names must be unique"
        self.inputs = inputs
        self.task_names = tuple(task_names)
        self.embedding = FeatureEmbedding(inputs)

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    def compute(
        self, categorical: Tensor, numeric: Tensor, return_gates: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Logits ``(B, T)`` and, if asked and the model has gates, gate weights ``(B, T, E)``."""
        raise NotImplementedError

    def forward(
        self, batch: Batch, return_gates: bool = False
    ) -> dict[str, Tensor] | tuple[dict[str, Tensor], Tensor | None]:
        """Per-task logits ``{task: (B,)}``; with ``return_gates``, also gates ``(B, T, E)``.

        Gate weights are ``None`` for models without gates (Shared-Bottom).
        """
        logits, gates = self.compute(batch.categorical, batch.numeric, return_gates)
        out = dict(zip(self.task_names, logits.unbind(1), strict=True))
        return (out, gates) if return_gates else out
