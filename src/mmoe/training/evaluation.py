"""Per-task metrics of a model on a labelled batch, computed over all of its rows."""

from __future__ import annotations

from collections.abc import Sequence

from mmoe.data.batch import Batch
from mmoe.inference import predict_logits
from mmoe.models.base import MultiTaskModel
from mmoe.specs import TaskSpec
from mmoe.training.metrics import task_metrics


def evaluate(
    model: MultiTaskModel, batch: Batch, tasks: Sequence[TaskSpec], batch_size: int = 65_536
) -> dict[str, dict[str, float]]:
    """Per-task metrics of ``model`` on a labelled ``batch`` (see ``task_metrics``)."""
    assert batch.labels is not None and batch.label_mask is not None
    logits, _ = predict_logits(model, batch, batch_size)
    return task_metrics(
        logits.numpy(), batch.labels.cpu().numpy(), batch.label_mask.cpu().numpy(), tasks
    )
