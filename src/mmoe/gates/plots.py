"""Figures of the gate report (matplotlib, the ``plot`` extra), returned as PNG bytes.

Each function takes the report data of :func:`mmoe.gates.analysis.analyse` and returns one PNG,
which the report writes to a file and inlines (base64) in ``report.html``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmoe.errors import ConfigError

DPI = 110


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(
            "the gate report's figures need matplotlib: pip install 'mmoe[plot]'"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    return buffer.getvalue()


def _heatmap(
    ax: Any,
    matrix: np.ndarray,
    rows: Sequence[str],
    columns: Sequence[str],
    *,
    vmin: float,
    vmax: float,
    cmap: str,
    fmt: str = "{:.2f}",
    title: str = "",
) -> Any:
    """Draw ``matrix`` with labelled rows and columns and its values written in the cells."""
    import matplotlib

    colours = matplotlib.colormaps[cmap].with_extremes(bad="#eeeeee")  # grey: not compared
    image = ax.imshow(
        np.ma.masked_invalid(matrix), vmin=vmin, vmax=vmax, cmap=colours, aspect="auto"
    )
    crowded = len(columns) > 6 or max((len(c) for c in columns), default=0) > 10
    ax.set_xticks(range(len(columns)), labels=columns, rotation=90 if crowded else 0)
    ax.set_yticks(range(len(rows)), labels=rows)
    ax.tick_params(length=0, labelsize=8)
    ax.set_title(title, fontsize=10)
    if matrix.size <= 400:
        for (r, c), value in np.ndenumerate(matrix):
            if not np.isfinite(value):
                continue
            if vmin < 0 < vmax:  # diverging scale: dark at both ends
                level = abs(value) / max(abs(vmin), vmax)
            else:
                level = (value - vmin) / (vmax - vmin) if vmax > vmin else 0.0
            ax.text(c, r, fmt.format(value), ha="center", va="center", fontsize=7,
                    color="white" if level > 0.6 else "black")  # fmt: skip
    return image


def _experts_by_gate(report: dict[str, Any], key: str, gates: Sequence[int]) -> np.ndarray:
    experts = report["experts"]
    return np.array([[report["gates"][i][key][e] for e in experts] for i in gates], dtype=float)


def _levels(report: dict[str, Any]) -> list[tuple[int, list[int]]]:
    levels = sorted({g["level"] for g in report["gates"]})
    return [(lv, [i for i, g in enumerate(report["gates"]) if g["level"] == lv]) for lv in levels]


def weights_figure(report: dict[str, Any]) -> bytes:
    """Per level: mean gate weight and top-choice share, gates × experts (stacked panels)."""
    plt = _pyplot()
    levels = _levels(report)
    experts = report["experts"]
    keys = ("mean_weight", "top_share")
    panels = [(level, gates, key) for level, gates in levels for key in keys]
    heights = [1.0 + 0.4 * len(gates) for _, gates, _ in panels]
    fig, axes = plt.subplots(
        len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights},
        figsize=(2.5 + 0.45 * len(experts), sum(heights) + 0.9 * len(panels)),
    )  # fmt: skip
    titles = {"mean_weight": "mean gate weight", "top_share": "share of rows as top expert"}
    for ax, (level, gates, key) in zip(axes[:, 0], panels, strict=True):
        labels = [report["gates"][i]["label"] for i in gates]
        suffix = f" (level {level})" if len(levels) > 1 else ""
        matrix = _experts_by_gate(report, key, gates)
        image = _heatmap(ax, matrix, labels, experts, vmin=0.0,
                         vmax=max(float(np.nanmax(matrix)), 1e-9), cmap="Blues",
                         title=titles[key] + suffix)  # fmt: skip
        fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
    fig.tight_layout()
    return _png(fig)


def utilisation_figure(report: dict[str, Any]) -> bytes:
    """Bars: each expert's mean weight under each gate, with the dead-expert threshold."""
    plt = _pyplot()
    levels = _levels(report)
    experts = report["experts"]
    fig, axes = plt.subplots(len(levels), 1, squeeze=False,
                             figsize=(2.5 + 0.5 * len(experts), 2.8 * len(levels)))  # fmt: skip
    for row, (level, gates) in enumerate(levels):
        ax = axes[row, 0]
        width = 0.8 / len(gates)
        x = np.arange(len(experts))
        for n, i in enumerate(gates):
            gate = report["gates"][i]
            values = [gate["mean_weight"][e] for e in experts]
            ax.bar(x + (n - (len(gates) - 1) / 2) * width, values, width, label=gate["label"])
        most = max(len(report["gates"][i]["experts"]) for i in gates)
        threshold = report["thresholds"]["dead_share"] / max(most, 1)
        ax.axhline(threshold, color="crimson", linestyle="--", linewidth=1,
                   label=f"dead below {threshold:.3g}")  # fmt: skip
        ax.axhline(1 / max(most, 1), color="gray", linestyle=":", linewidth=1,
                   label=f"even share {1 / max(most, 1):.3g}")  # fmt: skip
        ax.set_xticks(x, labels=experts, rotation=90 if len(experts) > 6 else 0, fontsize=8)
        ax.set_ylabel("mean gate weight")
        if len(levels) > 1:
            ax.set_title(f"level {level}", fontsize=10)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def entropy_figure(report: dict[str, Any], row_entropy: np.ndarray) -> bytes:
    """Histogram of each gate's per-row normalised entropy (0: one expert; 1: even weights)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    bins = np.linspace(0, 1, 41)
    for i, gate in enumerate(report["gates"]):
        k = len(gate["experts"])
        if k < 2:
            continue
        values = np.clip(row_entropy[:, i] / np.log(k), 0, 1)
        ax.hist(values, bins=bins, histtype="step", linewidth=1.5, density=True,
                label=f"{gate['label']} (mean {gate['normalized_entropy']:.2f})")  # fmt: skip
    ax.set_xlabel("normalised gate entropy of a row (0: one expert, 1: even weights)")
    ax.set_ylabel("density of rows")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def relatedness_figure(report: dict[str, Any]) -> bytes:
    """Gate divergence between gates beside the label correlation between tasks."""
    plt = _pyplot()
    rel = report["relatedness"]
    panels = 2 if rel["label_correlation"] is not None else 1
    gates, tasks = rel["gates"], rel["tasks"]
    side = 1.6 + 0.55 * max(len(gates), len(tasks))
    fig, axes = plt.subplots(1, panels, squeeze=False, figsize=(panels * (side + 1.2), side))
    divergence = np.array(rel["gate_divergence"], dtype=float)
    image = _heatmap(axes[0, 0], divergence, gates, gates, vmin=0.0, vmax=1.0, cmap="Oranges",
                     fmt="{:.3f}", title="gate divergence (mean per-row JS / ln 2)")  # fmt: skip
    fig.colorbar(image, ax=axes[0, 0], fraction=0.046, pad=0.04)
    if panels == 2:
        corr = np.array(rel["label_correlation"], dtype=float)
        image = _heatmap(axes[0, 1], corr, tasks, tasks, vmin=-1.0, vmax=1.0, cmap="RdBu_r",
                         fmt="{:.3f}", title="label correlation (Pearson)")  # fmt: skip
        fig.colorbar(image, ax=axes[0, 1], fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _png(fig)


def segment_figure(report: dict[str, Any], column: str) -> bytes:
    """Per gate: mean gate weight for each value of ``column`` (values × experts)."""
    plt = _pyplot()
    seg = report["segments"][column]
    experts = report["experts"]
    rows = [f"{v} ({n:,})" for v, n in zip(seg["values"], seg["rows"], strict=True)]
    gates = list(seg["mean_weight"])
    matrices = [np.array(seg["mean_weight"][g], dtype=float) for g in gates]
    vmax = max(max(float(m.max()) for m in matrices if m.size), 1e-9)
    cols = min(2 if len(experts) <= 8 else 1, len(gates))
    grid_rows = -(-len(gates) // cols)
    fig, axes = plt.subplots(
        grid_rows, cols, squeeze=False, layout="constrained",
        figsize=(cols * (2.5 + 0.42 * len(experts)),
                 grid_rows * (0.6 + 0.3 * len(rows)) + 0.9),
    )  # fmt: skip
    image = None
    for n, (gate, matrix) in enumerate(zip(gates, matrices, strict=True)):
        ax = axes[n // cols, n % cols]
        image = _heatmap(ax, matrix, rows, experts, vmin=0.0, vmax=vmax, cmap="Blues",
                         title=f"gate {gate}: mean weight by {column}")  # fmt: skip
        if n % cols:
            ax.set_yticklabels([])
        if n + cols < len(gates):  # experts are named once, under the lowest panel
            ax.set_xticklabels([])
    for n in range(len(gates), grid_rows * cols):
        axes[n // cols, n % cols].axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), fraction=0.03, pad=0.01)
    return _png(fig)


__all__ = [
    "entropy_figure",
    "relatedness_figure",
    "segment_figure",
    "utilisation_figure",
    "weights_figure",
]
