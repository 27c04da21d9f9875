"""The gate report's numbers: from summed gate statistics to the plain data of ``gates.json``.

Everything here is generic over ``gate_rows`` ``(level, gate name)`` and ``expert_names``:
MMoE and OMoE have one level with one gate per task; architectures with shared gates or several
extraction levels (CGC, PLE) add rows, and gates are compared only with gates of their own level
(a gate of another level mixes other experts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmoe.gates.stats import (
    DEAD_SHARE,
    POLARISED_WEIGHT,
    GateStats,
    find_problems,
    gate_labels,
)

#: Version of the ``gates.json`` layout.
GATES_FORMAT_VERSION = 1


def label_correlation(labels: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of every two tasks' labels over the rows labelled for both.

    ``labels`` and ``mask`` are ``(N, T)``; returns the ``(T, T)`` correlation (NaN where a
    label is constant or no row has both) and the ``(T, T)`` number of rows used. For two
    binary tasks this is the phi coefficient, the measure the MMoE paper quotes for census.

    Example:
        >>> y = np.array([[0, 0], [1, 1], [1, 0], [0, 1]], dtype=float)
        >>> corr, rows = label_correlation(y, np.ones_like(y, dtype=bool))
        >>> corr.round(3).tolist(), rows.tolist()
        ([[1.0, 0.0], [0.0, 1.0]], [[4, 4], [4, 4]])
    """
    num_tasks = labels.shape[1]
    corr = np.full((num_tasks, num_tasks), np.nan)
    rows = np.zeros((num_tasks, num_tasks), dtype=np.int64)
    for i in range(num_tasks):
        for j in range(num_tasks):
            both = mask[:, i] & mask[:, j]
            rows[i, j] = int(both.sum())
            a, b = labels[both, i].astype(np.float64), labels[both, j].astype(np.float64)
            if len(a) > 1 and a.std() > 0 and b.std() > 0:
                corr[i, j] = float(np.corrcoef(a, b)[0, 1])
    return corr, rows


def _per_expert(values: Any, experts: Sequence[str], digits: int = 4) -> dict[str, float]:
    return {name: round(float(v), digits) for name, v in zip(experts, values, strict=True)}


def analyse(
    stats: GateStats,
    gate_rows: Sequence[tuple[int, str]],
    expert_names: Sequence[str],
    task_names: Sequence[str],
    segment_values: dict[str, list[str]] | None = None,
    labels: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The content of ``gates.json`` (plain data; strict JSON once NaN is written as null).

    Args:
        stats: sums over the rows, made with ``pairs=True``, ``top=True`` and one entry of
            ``segments`` per item of ``segment_values``.
        gate_rows: ``(level, gate name)`` of each gate row ``G``.
        expert_names: names of the ``E`` experts.
        task_names: the model's tasks (the rows of the label correlation).
        segment_values: for each ``--by`` column, the names of its value codes.
        labels: ``(labels (N, T), mask (N, T))`` of the same rows, when the data has them.
    """
    u = stats.utilisation().numpy()
    top = stats.top_share().numpy()
    selectable = stats.selectable().numpy()
    k = stats.num_selectable().numpy()
    entropy = stats.entropy().numpy()
    norm_entropy = stats.normalized_entropy().numpy()
    names = gate_labels(gate_rows)
    experts = list(expert_names)
    gates = []
    for i, (level, gate) in enumerate(gate_rows):
        sel = selectable[i]
        chosen = int(np.argmax(u[i]))
        gates.append(
            {
                "label": names[i],
                "level": level,
                "name": gate,
                "experts": [e for e, s in zip(experts, sel, strict=True) if s],
                "mean_weight": _per_expert(u[i], experts),
                "top_share": _per_expert(top[i], experts),
                "entropy": round(float(entropy[i]), 4),
                "normalized_entropy": round(float(norm_entropy[i]), 4),
                "min_utilisation": round(float(u[i][sel].min()) if sel.any() else 0.0, 4),
                "max_utilisation": round(float(u[i].max()), 4),
                "main_expert": experts[chosen],
            }
        )
    levels = []
    for level in sorted({lv for lv, _ in gate_rows}):
        rows = [i for i, (lv, _) in enumerate(gate_rows) if lv == level]
        users = selectable[rows].sum(0)  # gates of the level that can select each expert
        mean = np.where(users > 0, u[rows].sum(0) / np.maximum(users, 1), np.nan)
        levels.append({"level": level, "gates": [names[i] for i in rows],
                       "utilisation": _per_expert(mean, experts)})  # fmt: skip
    divergence = stats.divergence().numpy()
    same_level = np.array([[a[0] == b[0] for b in gate_rows] for a in gate_rows])
    divergence = np.where(same_level, divergence, np.nan)
    relatedness: dict[str, Any] = {
        "gates": names,
        "gate_divergence": divergence.round(4).tolist(),
        "tasks": list(task_names),
        "label_correlation": None,
        "label_rows": None,
    }
    if labels is not None:
        corr, rows_used = label_correlation(*labels)
        relatedness["label_correlation"] = corr.round(4).tolist()
        relatedness["label_rows"] = rows_used.tolist()
    segments = {}
    for column, values in (segment_values or {}).items():
        counts = stats.segment_rows[column].numpy()
        weight = stats.segment_weight[column].numpy()  # (V, G, E)
        seg_entropy = stats.segment_entropy[column].numpy()  # (V, G)
        present = counts > 0
        denominator = np.maximum(counts, 1)
        segments[column] = {
            "values": [v for v, p in zip(values, present, strict=True) if p],
            "rows": [int(c) for c in counts[present]],
            "mean_weight": {
                names[i]: (weight[present, i] / denominator[present, None]).round(4).tolist()
                for i in range(len(names))
            },
            "normalized_entropy": {
                names[i]: (
                    seg_entropy[present, i] / denominator[present] / max(math.log(k[i]), 1e-12)
                    if k[i] > 1
                    else np.zeros(int(present.sum()))
                )
                .round(4)
                .tolist()
                for i in range(len(names))
            },
        }
    return {
        "format_version": GATES_FORMAT_VERSION,
        "rows": stats.rows,
        "experts": experts,
        "gates": gates,
        "levels": levels,
        "relatedness": relatedness,
        "segments": segments,
        "thresholds": {
            "dead_share": DEAD_SHARE,
            "polarised_weight": POLARISED_WEIGHT,
            "meaning": (
                f"an expert is dead when every gate of its level that can select it gives it a "
                f"mean weight below {DEAD_SHARE:g} of an even share (1/number of experts the "
                f"gate can select); a gate is polarised when one expert takes at least "
                f"{POLARISED_WEIGHT:g} of its mean weight"
            ),
        },
        "warnings": [p.message for p in find_problems(stats, gate_rows, expert_names)],
    }


__all__ = ["GATES_FORMAT_VERSION", "analyse", "label_correlation"]
