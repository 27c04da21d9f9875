"""Inference over whole splits in large batches, without autograd."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mmoe.data.batch import Batch
from mmoe.features import TaskSpec
from mmoe.models.base import MultiTaskModel
from mmoe.training.metrics import task_metrics


def predict_logits(
    model: MultiTaskModel, batch: Batch, batch_size: int = 65_536, gates: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Logits ``(N, T)`` (and gate weights ``(N, T, E)`` if asked) for every row of ``batch``."""
    was_training = model.training
    model.eval()
    logits, weights = [], []
    try:
        with torch.inference_mode():
            for start in range(0, len(batch), batch_size):
                part = batch.slice(start, start + batch_size)
                z, g = model.compute(part.categorical, part.numeric, return_gates=gates)
                logits.append(z)
                if g is not None:
                    weights.append(g)
    finally:
        model.train(was_training)
    if not logits:
        return torch.zeros(0, model.num_tasks), None
    return torch.cat(logits), (torch.cat(weights) if weights else None)


def evaluate(
    model: MultiTaskModel, batch: Batch, tasks: Sequence[TaskSpec], batch_size: int = 65_536
) -> dict[str, dict[str, float]]:
    """Per-task metrics of ``model`` on a labelled ``batch``."""
    assert batch.labels is not None and batch.label_mask is not None
    logits, _ = predict_logits(model, batch, batch_size)
    return task_metrics(logits.numpy(), batch.labels.numpy(), batch.label_mask.numpy(), tasks)
