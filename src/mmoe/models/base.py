"""What every architecture shares: inputs, task names and the tensor ``forward`` contract."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel
from torch import Tensor, nn

from mmoe.data.batch import Batch
from mmoe.layers import EnrichedEmbedding, FeatureEmbedding
from mmoe.specs import InputSpec


class MultiTaskModel(nn.Module):
    """Base class of every architecture: ``forward(categorical, numeric) -> logits (B, T)``.

    ``forward`` takes and returns tensors only, so DistributedDataParallel, ``torch.export`` and
    ONNX export call the module itself. With ``return_gates=True`` it returns ``(logits, gates)``,
    gates ``(B, G, E)`` (``G = T`` for MMoE and OMoE; see :attr:`gate_rows`) or ``None`` for
    a model without gates. :meth:`task_outputs` maps the logits of a :class:`Batch` to
    ``{task: (B,)}`` for users. Models return logits; the sigmoid of a
    binary task is applied only by the loss, by prediction and by export (DESIGN.md §4).
    """

    #: The hyper-parameter class of the ``model:`` section (``mmoe.config.models``).
    config_class: ClassVar[type[BaseModel]]
    #: Whether ``forward(..., return_gates=True)`` returns gate weights (false for Shared-Bottom).
    has_gates: ClassVar[bool] = False

    def __init__(
        self,
        inputs: InputSpec,
        task_names: Sequence[str],
        cross_layers: int = 0,
        cross_rank: int | None = None,
        input_dropout: float = 0.0,
    ) -> None:
        """``cross_layers``, ``cross_rank``, ``input_dropout``: the shared input block
        (:class:`~mmoe.config.models.InputBlockConfig`); all off runs the plain embedding."""
        super().__init__()
        assert len(task_names) >= 1, "a model needs at least one task"
        assert len(set(task_names)) == len(task_names), "task names must be unique"
        self.inputs = inputs
        self.task_names = tuple(task_names)
        if cross_layers or input_dropout:
            self.embedding: FeatureEmbedding = EnrichedEmbedding(
                inputs, cross_layers, cross_rank, input_dropout
            )
        else:
            self.embedding = FeatureEmbedding(inputs)

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    @property
    def gate_rows(self) -> tuple[tuple[int, str], ...]:
        """What each row of ``gates (B, G, E)`` is: ``(level, gate name)``, empty without gates.

        A task's gate is named after the task. MMoE and OMoE have one level and ``G = T`` rows;
        architectures with several levels or shared gates (CGC, PLE) override this, with the
        gates of every level stacked along ``G`` and each row spread over all ``E`` experts of
        its level (zero for an expert the gate does not select).
        """
        return tuple((0, task) for task in self.task_names) if self.has_gates else ()

    @property
    def expert_names(self) -> tuple[str, ...]:
        """Names of the ``E`` experts along the last dimension of ``gates``; empty without gates."""
        return ()

    def forward(
        self, categorical: Tensor, numeric: Tensor, return_gates: bool = False
    ) -> Tensor | tuple[Tensor, Tensor | None]:
        """Logits ``(B, T)``; with ``return_gates``, ``(logits, gates (B, G, E) or None)``."""
        raise NotImplementedError

    def shared_layer_weight(self) -> Tensor | None:
        """The weight of the last layer every task shares, or ``None`` if there is none.

        ``training.task_weighting: gradnorm`` balances the tasks' gradient norms on it.
        """
        return None

    def shared_layer_rows(self) -> slice | None:
        """Which entries along the first dimension of :meth:`shared_layer_weight` all tasks share.

        ``None``: the whole tensor (MMoE's stacked experts, Shared-Bottom's last layer). CGC and
        PLE stack their task and shared experts in one tensor; only the shared ones count.
        """
        return None

    def task_outputs(self, batch: Batch) -> dict[str, Tensor]:
        """Per-task logits ``{task: (B,)}`` of a batch, in the model's task order."""
        logits = self(batch.categorical, batch.numeric)
        return dict(zip(self.task_names, logits.unbind(1), strict=True))
