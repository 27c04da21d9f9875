"""Per-task metrics of a model on a labelled batch, computed over all of its rows."""

from __future__ import annotations

from collections.abc import Sequence

from mmoe.data.batch import Batch
from mmoe.gates.stats import GateStats
from mmoe.inference import predict_logits
from mmoe.models.base import MultiTaskModel
from mmoe.specs import TaskSpec
from mmoe.training.metrics import task_metrics


def evaluate(
    model: MultiTaskModel, batch: Batch, tasks: Sequence[TaskSpec], batch_size: int = 65_536
) -> dict[str, dict[str, float]]:
    """Per-task metrics of ``model`` on a labelled ``batch`` (see ``task_metrics``)."""
    return evaluate_with_gates(model, batch, tasks, batch_size, gates=False)[0]


def evaluate_with_gates(
    model: MultiTaskModel,
    batch: Batch,
    tasks: Sequence[TaskSpec],
    batch_size: int = 65_536,
    gates: bool = True,
) -> tuple[dict[str, dict[str, float]], GateStats | None]:
    """Per-task metrics and, for a gated model, the gate statistics of the same pass.

    The gates come from the forward pass that computes the metrics; summing them costs a few
    reductions per slice (``mmoe.gates.stats``), none in the training step. The statistics are
    ``None`` for a model without gates or with ``gates=False``.
    """
    assert batch.labels is not None and batch.label_mask is not None
    stats = None
    if gates and model.has_gates:
        stats = GateStats(len(model.gate_rows), len(model.expert_names))
    logits, _ = predict_logits(
        model, batch, batch_size, on_gates=None if stats is None else stats.update
    )
    metrics = task_metrics(
        logits.numpy(), batch.labels.cpu().numpy(), batch.label_mask.cpu().numpy(), tasks
    )
    return metrics, stats
