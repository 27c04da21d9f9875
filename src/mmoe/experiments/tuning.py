"""Random search of a census config's hyper-parameters on validation data only.

The paper tuned every method (learning rate, steps, experts, units; at most 2048 hidden units
per layer) on the main task's validation AUC. This module does the same within a stated budget:
``trials`` configurations drawn from :data:`SEARCH_SPACE` with a fixed seed (trial 0 is the
config as given), each trained once (``training.seed`` 0) with early stopping on the main task's
validation AUC, which also chooses the number of steps. The test split is never looked at.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

#: Values tried per key. Layer widths stay at or below the paper's cap of 2048 units.
COMMON_SPACE: dict[str, list[Any]] = {
    "training.learning_rate": [3e-4, 1e-3, 3e-3, 1e-2],
    "training.batch_size": [256, 512, 1024, 2048],
    "features.embedding_dim": [4, 8, 16],
}
SEARCH_SPACE: dict[str, dict[str, list[Any]]] = {
    "mmoe": {
        "model.num_experts": [4, 8, 16],
        "model.expert_hidden": [[16], [32], [64], [128], [256], [128, 64]],
        "model.tower_hidden": [[8], [16], [32], [64]],
    },
    "omoe": {
        "model.num_experts": [4, 8, 16],
        "model.expert_hidden": [[16], [32], [64], [128], [256], [128, 64]],
        "model.tower_hidden": [[8], [16], [32], [64]],
    },
    # CGC / PLE: 2-16 experts in all for two tasks, as MMoE's 4-16, split into shared and own.
    "cgc": {
        "model.num_shared_experts": [1, 2, 4, 8],
        "model.num_task_experts": [1, 2, 4],
        "model.expert_hidden": [[16], [32], [64], [128], [256], [128, 64]],
        "model.tower_hidden": [[8], [16], [32], [64]],
    },
    "ple": {
        "model.num_levels": [2, 3],
        "model.num_shared_experts": [1, 2, 4, 8],
        "model.num_task_experts": [1, 2, 4],
        "model.expert_hidden": [[16], [32], [64], [128], [256], [128, 64]],
        "model.tower_hidden": [[8], [16], [32], [64]],
    },
    "shared_bottom": {
        "model.bottom_hidden": [[64], [128], [256], [512], [1024], [256, 128]],
        "model.tower_hidden": [[8], [16], [32], [64]],
    },
    "single_task": {
        "model.bottom_hidden": [[64], [128], [256], [512], [1024], [256, 128]],
        "model.tower_hidden": [[8], [16], [32], [64]],
    },
}
#: The options of the "beat the boosted trees" work (numeric encodings, cross layers,
#: regularisation), searched with ``--space options`` (hyper-parameters stay as configured) or
#: ``--space both``. The default ``paper`` space leaves earlier search records reproducible.
OPTIONS_SPACE: dict[str, list[Any]] = {
    "features.numeric_encoding": [
        "standardize", "values", "quantile_bins", "tree_bins", "piecewise_linear"
    ],
    "model.cross_layers": [0, 1, 2],
    "model.dropout": [0.0, 0.1, 0.2],
    "model.input_dropout": [0.0, 0.1],
}  # fmt: skip
SPACES = ("paper", "options", "both")

#: Early stopping during the search: evaluations (epochs) without a better main-task AUC.
SEARCH_PATIENCE = 3


@dataclass(frozen=True)
class Trial:
    """One configuration of the search."""

    index: int
    config: str
    data_dir: str
    overrides: tuple[str, ...]  # the sampled values, as --set strings
    main_task_only: bool  # single-task: train the main task alone
    max_epochs: int = 30  # early stopping decides the length within this bound


def sample_trials(
    method: str,
    trials: int,
    config: str,
    data_dir: str,
    search_seed: int = 0,
    max_epochs: int = 30,
    space_name: str = "paper",
) -> list[Trial]:
    """Trial 0 keeps the config's own values; the others draw every key of the space at random.

    ``space_name``: ``paper`` (the architecture's hyper-parameters), ``options``
    (:data:`OPTIONS_SPACE` only) or ``both``.

    Example:
        >>> [t.overrides[:1] for t in sample_trials("mmoe", 2, "c.yaml", "d")]
        [(), ('training.learning_rate=0.01',)]
    """
    space: dict[str, list[Any]] = {}
    if space_name in ("paper", "both"):
        space |= {**COMMON_SPACE, **SEARCH_SPACE[method]}
    if space_name in ("options", "both"):
        space |= OPTIONS_SPACE
    rng = random.Random(search_seed)
    drawn: list[tuple[str, ...]] = [()]
    seen = {()}
    while len(drawn) < trials:
        choice = tuple(f"{key}={_yaml(rng.choice(values))}" for key, values in space.items())
        if choice not in seen:  # never train the same configuration twice
            seen.add(choice)
            drawn.append(choice)
    single = method == "single_task"
    return [Trial(i, config, data_dir, o, single, max_epochs) for i, o in enumerate(drawn)]


def run_paper_search(
    plan: Sequence[Trial], workers: int | None = None, progress: bool = True
) -> list[dict[str, Any]]:
    """Train the planned trials with :func:`mmoe.search.run_search` (what ``mmoe tune`` runs).

    The trials' values come from :func:`sample_trials` (a :class:`mmoe.search.ListSearch`), so
    a recorded search reruns trial for trial. Returns one record per trial: the trial's fields,
    its validation AUCs at the best epoch, the best step and epoch, and seconds.
    """
    import json
    import os

    from mmoe.config import load_config
    from mmoe.search import ListSearch, run_search

    first = plan[0]
    base = [
        f"data.data_dir={first.data_dir}",
        f"training.epochs={first.max_epochs}",
        f"training.patience={SEARCH_PATIENCE}",
    ]
    if first.main_task_only:  # single-task: train the main task alone
        main = load_config(first.config, base).tasks[0].model_dump(mode="json")
        base.append(f"tasks={json.dumps([main])}")
    search = ListSearch([t.overrides for t in plan])
    results = run_search(
        first.config, search, len(plan), base, workers or os.cpu_count() or 1, progress
    )
    return [
        {
            **asdict(trial),
            "valid_auc": {t: m["auc"] for t, m in r["valid"].items()},
            "best_step": r["best_step"],
            "best_epoch": r["best_epoch"],
            "seconds": r["seconds"],
        }
        for trial, r in zip(plan, results, strict=True)
    ]


def best_trial(results: Sequence[dict[str, Any]], main_task: str) -> dict[str, Any]:
    """The trial with the highest main-task validation AUC (earliest index on ties)."""
    return max(results, key=lambda r: (r["valid_auc"][main_task], -r["index"]))


def format_search(results: Sequence[dict[str, Any]], main_task: str) -> str:
    """All trials as a markdown table, best first."""
    ranked = sorted(results, key=lambda r: -r["valid_auc"][main_task])
    lines = [
        f"| trial | valid {main_task} AUC | best epoch | seconds | overrides |",
        "|---|---|---|---|---|",
    ]
    for r in ranked:
        sets = " ".join(r["overrides"]) or "(the config as shipped)"
        lines.append(
            f"| {r['index']} | {r['valid_auc'][main_task]:.4f} | {r['best_epoch']} "
            f"| {r['seconds']:.0f} | {sets} |"
        )
    return "\n".join(lines)


def _yaml(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)
