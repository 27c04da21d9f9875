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


def weighted_roc_auc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> float:
    """Area under the ROC curve with per-row weights (scikit-learn's ``sample_weight``).

    The weighted Mann-Whitney statistic: over positive-negative pairs, the weight product of
    pairs ranked right plus half that of tied pairs, over the product of the class weights.

    Example:
        >>> weighted_roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]),
        ...                  np.array([1.0, 3.0, 1.0, 1.0]))
        0.625
    """
    labels = labels.astype(bool)
    w = weights.astype(np.float64)
    w_pos, w_neg = float(w[labels].sum()), float(w[~labels].sum())
    if w_pos <= 0 or w_neg <= 0:
        return float("nan")
    _, inverse = np.unique(scores, return_inverse=True)
    pos = np.bincount(inverse, weights=np.where(labels, w, 0.0))  # per distinct score
    neg = np.bincount(inverse, weights=np.where(labels, 0.0, w))
    below = np.cumsum(neg) - neg  # negative weight strictly below each score
    return float((pos * (below + 0.5 * neg)).sum() / (w_pos * w_neg))


def log_loss_from_logits(
    labels: np.ndarray, logits: np.ndarray, weights: np.ndarray | None = None
) -> float:
    """Mean (or weighted mean) binary cross-entropy, computed stably from logits."""
    logits = logits.astype(np.float64)
    return float(np.average(np.logaddexp(0.0, logits) - labels * logits, weights=weights))


def task_metrics(
    logits: np.ndarray,
    labels: np.ndarray,
    mask: np.ndarray,
    tasks: Sequence[TaskSpec],
    weights: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics of every task over the rows where its label is known.

    Args:
        logits, labels: ``(N, T)`` arrays; mask: ``(N, T)`` bool.
        weights: ``(N,)`` sample weights, or ``None``: AUC, log loss and MSE are then weighted
            (``rows`` stays a count of rows).

    Returns:
        ``{task: {"rows": n, "auc": …, "logloss": …}}`` (binary) or ``{"rows", "rmse", "mse"}``.
    """
    out: dict[str, dict[str, float]] = {}
    for k, task in enumerate(tasks):
        keep = mask[:, k]
        z, y = logits[keep, k], labels[keep, k]
        w = None if weights is None else weights[keep]
        if w is not None and not w.sum() > 0:
            z, y, w = z[:0], y[:0], None  # no weight on any labelled row: undefined
        row: dict[str, float] = {"rows": int(keep.sum())}
        if task.type == "binary":
            row["auc"] = roc_auc(y, z) if w is None else weighted_roc_auc(y, z, w)
            row["logloss"] = log_loss_from_logits(y, z, w) if y.size else float("nan")
        else:
            squared = (z.astype(np.float64) - y) ** 2
            mse = float(np.average(squared, weights=w)) if y.size else float("nan")
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
