"""Regression targets standardised with training statistics, and back to their own unit.

A regression target such as "weeks worked in year" (0–52) or raw watch seconds has a squared
error hundreds of times larger than a binary task's cross-entropy; summed with equal weights, it
drowns the binary tasks. So each regression task with ``standardize`` (the default) is trained on
``(y - mean) / std`` with the training split's label mean and (population) standard deviation.
The model then predicts in standard deviations; predictions and metrics are turned back into the
original unit with ``z * std + mean``.

The statistics are plain JSON, ``{task: {"mean": m, "std": s}}``, stored in the run directory's
``preprocessor.json`` under ``"target_stats"`` (an exporter reads them there). A task absent from
the mapping is not standardised (binary tasks, ``standardize: false``, runs from before).

Example:
    >>> task = TaskSpec(name="weeks", column="weeks", type="regression")
    >>> stats = fit_target_stats([task], np.array([[0.0], [52.0]]), np.ones((2, 1), bool))
    >>> stats
    {'weeks': {'mean': 26.0, 'std': 26.0}}
    >>> z = standardize_targets(stats, [task], np.array([[0.0], [52.0]], dtype=np.float32))
    >>> z.ravel().tolist(), to_original_units(stats, [task], z).ravel().tolist()
    ([-1.0, 1.0], [0.0, 52.0])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mmoe.specs import TaskSpec

#: ``{task: {"mean": m, "std": s}}`` of every standardised regression task.
TargetStats = dict[str, dict[str, float]]


def fit_target_stats(
    tasks: Sequence[TaskSpec], labels: np.ndarray, mask: np.ndarray
) -> TargetStats:
    """Mean and population std of every standardised task's known training labels.

    Args:
        tasks: the task specs, in column order.
        labels: ``(N, T)`` training labels (any value where missing); mask: ``(N, T)`` bool.

    A constant target gets ``std`` 1 (it is only centred).
    """
    stats: TargetStats = {}
    for k, task in enumerate(tasks):
        if not task.standardized:
            continue
        y = labels[mask[:, k], k].astype(np.float64)
        mean = float(y.mean()) if y.size else 0.0
        std = float(y.std()) if y.size else 1.0
        stats[task.name] = {"mean": mean, "std": std if std > 0 else 1.0}
    return stats


def standardize_targets(
    stats: Mapping[str, Mapping[str, float]],
    tasks: Sequence[TaskSpec],
    labels: np.ndarray,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """``labels`` ``(N, T)`` with every standardised task's column as ``(y - mean) / std``.

    Modifies ``labels`` in place and returns it; where ``mask`` ``(N, T)`` is false the label
    stays 0 (missing labels are masked out of the loss, their value is never read).
    """
    for k, task in enumerate(tasks):
        s = stats.get(task.name)
        if s is not None:
            z = (labels[:, k].astype(np.float64) - s["mean"]) / s["std"]
            labels[:, k] = z if mask is None else np.where(mask[:, k], z, 0.0)
    return labels


def to_original_units(
    stats: Mapping[str, Mapping[str, float]], tasks: Sequence[TaskSpec], values: np.ndarray
) -> np.ndarray:
    """A float64 copy of ``values`` ``(N, T)`` with standardised columns as ``z * std + mean``."""
    out = np.array(values, dtype=np.float64)
    for k, task in enumerate(tasks):
        s = stats.get(task.name)
        if s is not None:
            out[:, k] = out[:, k] * s["std"] + s["mean"]
    return out


__all__ = ["TargetStats", "fit_target_stats", "standardize_targets", "to_original_units"]
