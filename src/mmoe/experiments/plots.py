"""Figures of the paper's studies (matplotlib, the ``plot`` extra), written as PNG files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmoe.errors import ConfigError

MODEL_LABELS = {
    "shared_bottom": "Shared-Bottom", "omoe": "OMoE", "mmoe": "MMoE", "cgc": "CGC", "ple": "PLE",
}  # fmt: skip
MODEL_COLORS = {
    "shared_bottom": "tab:red", "omoe": "tab:orange", "mmoe": "tab:blue", "cgc": "tab:green",
    "ple": "tab:purple",
}  # fmt: skip


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("figures need matplotlib: pip install 'mmoe[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> None:
    from mmoe.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


# (cosine, label correlation) read off the MMoE paper's Fig. 2; the paper prints no table of it.
PAPER_CORRELATION_POINTS: tuple[tuple[float, float], ...] = ((0.9, 0.3),)


def correlation_curve_figure(
    rows: Sequence[dict[str, float]],
    path: str | Path,
    paper_points: Sequence[tuple[float, float]] = PAPER_CORRELATION_POINTS,
) -> None:
    """Label Pearson correlation against the weight cosine (paper Fig. 2).

    ``rows`` are :func:`mmoe.experiments.synthetic_study.correlation_curve`'s (``cosine``,
    ``mean``, ``std``); ``paper_points`` are drawn as crosses beside them.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    x = [r["cosine"] for r in rows]
    mean = [r["mean"] for r in rows]
    low = [r["mean"] - r["std"] for r in rows]
    high = [r["mean"] + r["std"] for r in rows]
    ax.plot([0, 1], [0, 1], ":", color="gray", label="label correlation = cosine")
    ax.fill_between(x, low, high, alpha=0.25, label="± 1 std over seeds")
    ax.plot(x, mean, "o-", label=f"label correlation (mean of {rows[0].get('seeds', '?')} seeds)")
    if paper_points:
        px, py = zip(*paper_points, strict=True)
        ax.plot(px, py, "x", color="black", markersize=9, mew=2,
                label="paper Fig. 2 (read off the figure)")  # fmt: skip
    ax.set(xlabel="cosine of the task weight vectors", ylabel="Pearson correlation of labels")
    ax.set(xlim=(0, 1), ylim=(min(0.0, min(low)), 1))
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)
    plt.close(fig)


def loss_curves_figure(
    curves: dict[tuple[str, float], tuple[list[int], list[float]]],
    path: str | Path,
    spread: dict[tuple[str, float], tuple[list[float], list[float], int]] | None = None,
    statistic: str = "mean",
) -> None:
    """Test loss over seeds against training steps, one panel per correlation (paper Fig. 4).

    ``curves[(model, correlation)] = (steps, losses)``, the ``statistic`` (mean or median) of
    the seeds at each step; ``spread[(model, correlation)] = (q25, q75, seeds)`` adds a band
    holding the middle half of the seeds at each step.
    """
    plt = _pyplot()
    correlations = sorted({c for _, c in curves}, reverse=True)
    fig, axes = plt.subplots(
        1, len(correlations), figsize=(4 * len(correlations), 3.4), sharey=True
    )
    axes = [axes] if len(correlations) == 1 else list(axes)
    for ax, corr in zip(axes, correlations, strict=True):
        order = list(MODEL_LABELS)
        for (model, c), (steps, loss) in sorted(
            curves.items(), key=lambda kv: order.index(kv[0][0]) if kv[0][0] in order else 99
        ):
            if c == corr:
                ax.plot(steps, loss, marker=".", label=MODEL_LABELS.get(model, model),
                        color=MODEL_COLORS.get(model))  # fmt: skip
                if spread is not None and (model, c) in spread:
                    low, high, _ = spread[(model, c)]
                    ax.fill_between(steps, low, high, color=MODEL_COLORS.get(model), alpha=0.15)
        ax.set(title=f"correlation {corr}", xlabel="training steps", yscale="log")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out loss (MSE, mean of both tasks)")
    axes[0].legend(fontsize=8)
    if spread:
        seeds = min(n for _, _, n in spread.values())
        fig.suptitle(
            f"lines: {statistic} over {seeds} seeds; bands: 25th to 75th percentile of the seeds",
            fontsize=9,
        )
    _save(fig, path)
    plt.close(fig)


def final_loss_histograms(
    finals: dict[tuple[str, float], list[float]], path: str | Path, bins: int = 20
) -> None:
    """Histograms of the final test loss over seeds, models × correlations (paper Fig. 5).

    Every panel shares one logarithmic axis, bins evenly spaced on it: the runs cluster within
    a factor of a few while a diverged run can sit 50 times higher, and a linear axis wide
    enough for it would put every other run into its first bin.
    """
    plt = _pyplot()
    models = [m for m in MODEL_LABELS if any(k[0] == m for k in finals)]
    correlations = sorted({c for _, c in finals}, reverse=True)
    fig, axes = plt.subplots(
        len(correlations), len(models), figsize=(3.2 * len(models), 2.4 * len(correlations)),
        squeeze=False, sharex=True, sharey=True,
    )  # fmt: skip
    values = [x for v in finals.values() for x in v if x > 0]
    low, high = min(values) / 1.05, max(values) * 1.05
    edges = [low * (high / low) ** (i / bins) for i in range(bins + 1)]
    for i, corr in enumerate(correlations):
        for j, model in enumerate(models):
            ax = axes[i][j]
            ax.hist(finals.get((model, corr), []), bins=edges, color=MODEL_COLORS.get(model))
            ax.set_xscale("log")
            ax.set_title(f"{MODEL_LABELS[model]}, correlation {corr}", fontsize=9)
            if i == len(correlations) - 1:
                ax.set_xlabel("final test loss")
            if j == 0:
                ax.set_ylabel("seeds")
    seeds = max(len(v) for v in finals.values())
    fig.suptitle(
        f"final test loss of each of {seeds} seeds (same logarithmic axes in every panel)",
        fontsize=9,
    )
    _save(fig, path)
    plt.close(fig)
