"""Per-task metrics of a model on a labelled batch, computed over all of its rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mmoe.data.batch import Batch
from mmoe.data.targets import to_original_units
from mmoe.inference import predict_logits
from mmoe.models.base import MultiTaskModel
from mmoe.specs import TaskSpec
from mmoe.training.metrics import task_metrics


def evaluate(
    model: MultiTaskModel,
    batch: Batch,
    tasks: Sequence[TaskSpec],
    batch_size: int = 65_536,
    target_stats: Mapping[str, Mapping[str, float]] | None = None,
    groups: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Per-task metrics of ``model`` on a labelled ``batch`` (see ``task_metrics``).

    Args:
        target_stats: the preprocessor's ``target_stats_``: standardised regression tasks are
            scored in their original unit (predictions and labels both turned back).
        groups: ``(N,)`` group key of every row, for the grouped AUC of binary tasks.
    """
    assert batch.labels is not None and batch.label_mask is not None
    logits, _ = predict_logits(model, batch, batch_size)
    values, labels = logits.numpy(), batch.labels.cpu().numpy()
    if target_stats:
        values = to_original_units(target_stats, tasks, values)
        labels = to_original_units(target_stats, tasks, labels)
    return task_metrics(values, labels, batch.label_mask.cpu().numpy(), tasks, groups)
