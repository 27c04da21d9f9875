"""Per-task metrics of a model on a labelled batch or stream, computed over all of its rows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

import numpy as np

from mmoe.data.batch import Batch
from mmoe.data.targets import to_original_units
from mmoe.gates.stats import GateStats
from mmoe.inference import predict_logits
from mmoe.models.base import MultiTaskModel
from mmoe.specs import TaskSpec
from mmoe.training.metrics import task_metrics


class LabelledStream(Protocol):
    """Labelled rows too many for one ``Batch`` (e.g. ``mmoe.data.streaming.EvalStream``)."""

    def batches(self) -> Iterator[Batch]: ...


def evaluate(
    model: MultiTaskModel,
    batch: Batch | LabelledStream,
    tasks: Sequence[TaskSpec],
    batch_size: int = 65_536,
    target_stats: Mapping[str, Mapping[str, float]] | None = None,
    groups: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Per-task metrics of ``model`` on a labelled ``batch`` or stream (see ``task_metrics``).

    Rows with sample weights (``Batch.weights``) give weighted metrics.

    Args:
        target_stats: the preprocessor's ``target_stats_``: standardised regression tasks are
            scored in their original unit (predictions and labels both turned back).
        groups: ``(N,)`` group key of every row, for the grouped AUC of binary tasks (a single
            batch only).
    """
    return evaluate_with_gates(model, batch, tasks, batch_size, target_stats, groups, gates=False)[
        0
    ]


def evaluate_with_gates(
    model: MultiTaskModel,
    batch: Batch | LabelledStream,
    tasks: Sequence[TaskSpec],
    batch_size: int = 65_536,
    target_stats: Mapping[str, Mapping[str, float]] | None = None,
    groups: np.ndarray | None = None,
    gates: bool = True,
) -> tuple[dict[str, dict[str, float]], GateStats | None]:
    """Per-task metrics (as :func:`evaluate`) and, for a gated model, the gate statistics of
    the same pass.

    The gates come from the forward pass that computes the metrics; summing them costs a few
    reductions per slice (``mmoe.gates.stats``), none in the training step. The statistics are
    ``None`` for a model without gates or with ``gates=False``.
    """
    stats = None
    if gates and model.has_gates:
        stats = GateStats(len(model.gate_rows), len(model.expert_names))
    on_gates = None if stats is None else stats.update
    parts = [batch] if isinstance(batch, Batch) else batch.batches()
    logits, labels, masks, weights = [], [], [], []
    for part in parts:
        assert part.labels is not None and part.label_mask is not None
        z, _ = predict_logits(model, part, batch_size, on_gates=on_gates)
        logits.append(z.numpy())
        labels.append(part.labels.cpu().numpy())
        masks.append(part.label_mask.cpu().numpy())
        if part.weights is not None:
            weights.append(part.weights.cpu().numpy())
    assert not weights or len(weights) == len(logits)
    values, truth = np.concatenate(logits), np.concatenate(labels)
    if target_stats:
        values = to_original_units(target_stats, tasks, values)
        truth = to_original_units(target_stats, tasks, truth)
    w = np.concatenate(weights) if weights else None
    return task_metrics(values, truth, np.concatenate(masks), tasks, groups, w), stats
