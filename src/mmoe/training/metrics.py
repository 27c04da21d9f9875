"""Per-task evaluation metrics: AUC and log loss (binary); RMSE, MSE, MAE and R² (regression).

Computed in NumPy on whole splits. AUC is exact (the Mann-Whitney statistic with tied scores
sharing their average rank), so it equals scikit-learn's ``roc_auc_score``; R² is
``1 - SS_res / SS_tot`` around the mean of the evaluated labels, as ``sklearn.metrics.r2_score``.
With row groups (``metrics.group_by``, e.g. a user id), binary tasks also get the grouped AUC
``gauc``: the mean of the per-group AUCs weighted by each group's labelled rows, over the groups
that hold both classes (a group with one class has no AUC and is skipped; ``gauc_groups`` counts
the groups that took part).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmoe.specs import TaskSpec

#: Metrics where a larger value is better; every other metric is minimised.
HIGHER_IS_BETTER = frozenset({"auc", "gauc", "r2"})


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


def grouped_auc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> tuple[float, int]:
    """Row-weighted mean of per-group AUCs, and how many groups had both classes.

    Groups holding one class only are skipped (their AUC is undefined); NaN when none is left.
    Vectorised: one sort by (group, score), ranks shared by ties within a group.

    Example:
        >>> y = np.array([0, 1, 0, 1, 1, 1, 0, 0])
        >>> s = np.array([.1, .9, .8, .2, .5, .6, .3, .4])
        >>> g = np.array([0, 0, 1, 1, 2, 2, 3, 3])  # groups 2 and 3 hold one class: skipped
        >>> grouped_auc(y, s, g)
        (0.5, 2)
    """
    labels = labels.astype(bool)
    if labels.size == 0:
        return float("nan"), 0
    _, group = np.unique(groups, return_inverse=True)
    order = np.lexsort((scores, group))
    g, s, y = group[order], scores[order], labels[order]
    n = g.size
    # Runs of equal (group, score): tied rows share the average of their positions.
    new_run = np.ones(n, dtype=bool)
    new_run[1:] = (g[1:] != g[:-1]) | (s[1:] != s[:-1])
    run = np.cumsum(new_run) - 1
    run_start = np.flatnonzero(new_run)
    run_end = np.append(run_start[1:], n) - 1
    position = (run_start[run] + run_end[run]) / 2.0  # 0-based, averaged over ties
    group_start = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    rank = position - group_start[np.cumsum(np.r_[True, g[1:] != g[:-1]]) - 1] + 1.0
    count = np.bincount(g)
    pos = np.bincount(g, weights=y.astype(np.float64))
    neg = count - pos
    rank_sum = np.bincount(g, weights=np.where(y, rank, 0.0))
    both = (pos > 0) & (neg > 0)
    if not both.any():
        return float("nan"), 0
    auc = (rank_sum[both] - pos[both] * (pos[both] + 1) / 2.0) / (pos[both] * neg[both])
    return float(np.average(auc, weights=count[both])), int(both.sum())


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
    groups: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Metrics of every task over the rows where its label is known.

    Args:
        logits, labels: ``(N, T)`` arrays (regression columns in the target's own unit);
            mask: ``(N, T)`` bool.
        groups: ``(N,)`` group key of every row (e.g. user ids) for the grouped AUC, or ``None``.
        weights: ``(N,)`` sample weights, or ``None``: AUC, log loss and the regression metrics
            are then weighted (``rows`` stays a count of rows; the grouped AUC is unweighted).

    Returns:
        ``{task: {"rows": n, "auc": …, "logloss": …}}`` (+ ``"gauc"``, ``"gauc_groups"`` with
        ``groups``) for binary tasks, ``{"rows", "rmse", "mse", "mae", "r2"}`` for regression.
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
            if groups is not None:
                row["gauc"], row["gauc_groups"] = grouped_auc(y, z, groups[keep])
        else:
            row.update(regression_metrics(y, z, w))
        out[task.name] = row
    return out


def regression_metrics(
    labels: np.ndarray, predictions: np.ndarray, weights: np.ndarray | None = None
) -> dict[str, float]:
    """RMSE, MSE, MAE and R² of predictions against labels, weighted by ``weights`` if given
    (NaN on no rows; R² NaN when the labels are constant). Weighted R² as scikit-learn's
    ``r2_score`` with ``sample_weight``.

    Example:
        >>> m = regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
        >>> {k: round(v, 4) for k, v in m.items()}
        {'rmse': 1.1547, 'mse': 1.3333, 'mae': 0.6667, 'r2': -1.0}
    """
    if labels.size == 0:
        return {"rmse": float("nan"), "mse": float("nan"), "mae": float("nan"), "r2": float("nan")}
    y = labels.astype(np.float64)
    error = predictions.astype(np.float64) - y
    mse = float(np.average(error**2, weights=weights))
    w = np.ones_like(y) if weights is None else weights.astype(np.float64)
    total = float(np.sum(w * (y - np.average(y, weights=w)) ** 2))
    r2 = 1.0 - float(np.sum(w * error**2)) / total if total > 0 else float("nan")
    mae = float(np.average(np.abs(error), weights=weights))
    return {"rmse": float(np.sqrt(mse)), "mse": mse, "mae": mae, "r2": r2}


def is_better(metric: str, new: float, old: float | None) -> bool:
    """Whether ``new`` improves on ``old`` (``None`` = nothing yet; NaN never improves)."""
    if np.isnan(new):
        return False
    if old is None or np.isnan(old):
        return True
    return new > old if metric in HIGHER_IS_BETTER else new < old
