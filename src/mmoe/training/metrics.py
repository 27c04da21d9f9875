"""Per-task evaluation metrics: AUC and log loss for binary tasks, RMSE and MSE for regression.

Computed in NumPy on whole splits. AUC is exact (the Mann-Whitney statistic with tied scores
sharing their average rank), so it equals scikit-learn's ``roc_auc_score``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmoe.specs import TaskSpec

#: Metrics where a larger value is better; every other metric is minimised.
HIGHER_IS_BETTER = frozenset({"auc"})


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present.

    Example:
        >>> roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
        0.75
    """
    labels = labels.astype(bool)
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based rank shared by ties
    rank_sum = average_rank[inverse][labels].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss_from_logits(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean binary cross-entropy, computed stably from logits."""
    logits = logits.astype(np.float64)
    return float(np.mean(np.logaddexp(0.0, logits) - labels * logits))


def task_metrics(
    logits: np.ndarray, labels: np.ndarray, mask: np.ndarray, tasks: Sequence[TaskSpec]
) -> dict[str, dict[str, float]]:
    """Metrics of every task over the rows where its label is known.

    Args:
        logits, labels: ``(N, T)`` arrays; mask: ``(N, T)`` bool.

    Returns:
        ``{task: {"rows": n, "auc": …, "logloss": …}}`` (binary) or ``{"rows", "rmse", "mse"}``.
    """
    out: dict[str, dict[str, float]] = {}
    for k, task in enumerate(tasks):
        keep = mask[:, k]
        z, y = logits[keep, k], labels[keep, k]
        row: dict[str, float] = {"rows": int(keep.sum())}
        if task.type == "binary":
            row["auc"] = roc_auc(y, z)
            row["logloss"] = log_loss_from_logits(y, z) if y.size else float("nan")
        else:
            mse = float(np.mean((z.astype(np.float64) - y) ** 2)) if y.size else float("nan")
            row["rmse"] = float(np.sqrt(mse))
            row["mse"] = mse
        out[task.name] = row
    return out


def is_better(metric: str, new: float, old: float | None) -> bool:
    """Whether ``new`` improves on ``old`` (``None`` = nothing yet; NaN never improves)."""
    if np.isnan(new):
        return False
    if old is None or np.isnan(old):
        return True
    return new > old if metric in HIGHER_IS_BETTER else new < old
