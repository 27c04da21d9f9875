"""The Census-Income tables of Ma et al., KDD 2018, §6: every method over several seeds.

For each method the shipped config ``configs/census/group{G}-{method}.yaml`` is trained once per
seed (``training.seed``; the data split stays fixed), and the table reports, per task, the mean
test AUC over seeds and the test AUC of the run with the best main-task validation AUC, beside
the paper's means. Single-Task trains one model per task from ``group{G}-single-task.yaml``;
its "best run" in each column is the run of that column's task with the best validation AUC.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mmoe.experiments.census_job import CensusJob

#: Mean test AUC of the paper (Ma et al., KDD 2018, Tables 2 and 3), per group, method and task.
PAPER_MEAN_TEST_AUC: dict[int, dict[str, dict[str, float]]] = {
    1: {
        "single_task": {"income": 0.9337, "marital": 0.9922},
        "shared_bottom": {"income": 0.9295, "marital": 0.9921},
        "omoe": {"income": 0.9319, "marital": 0.9923},
        "mmoe": {"income": 0.9359, "marital": 0.9927},
    },
    2: {
        "single_task": {"education": 0.8792, "marital": 0.9922},
        "shared_bottom": {"education": 0.8813, "marital": 0.9917},
        "omoe": {"education": 0.8813, "marital": 0.9912},
        "mmoe": {"education": 0.8826, "marital": 0.9924},
    },
}
TASKS = {1: ("income", "marital"), 2: ("education", "marital")}
METHODS = ("single_task", "shared_bottom", "omoe", "mmoe", "cgc", "ple")
LABELS = {
    "single_task": "Single-Task",
    "shared_bottom": "Shared-Bottom",
    "omoe": "OMoE",
    "mmoe": "MMoE",
    "cgc": "CGC",
    "ple": "PLE",
    "lightgbm": "LightGBM (single-task)",
}
#: Multi-task methods whose seeds are also averaged into a seed ensemble (mean of logits).
ENSEMBLE_METHODS = ("shared_bottom", "omoe", "mmoe")


def config_path(configs_dir: str | Path, group: int, method: str) -> Path:
    return Path(configs_dir) / f"group{group}-{method.replace('_', '-')}.yaml"


def plan_jobs(
    group: int,
    methods: Sequence[str],
    seeds: int,
    configs_dir: str | Path,
    data_dir: str | Path,
    overrides: Sequence[str] = (),
    predictions_dir: str | Path | None = None,
) -> list[CensusJob]:
    """Every (method, seed[, task]) run of the study, in a stable order.

    ``overrides`` (``--set`` strings) apply to the networks; multi-task networks save their
    validation and test logits under ``predictions_dir`` (for the seed-ensemble rows).
    """
    jobs = []
    for method in methods:
        # LightGBM reads the features and tasks of the single-task config.
        source = "single_task" if method == "lightgbm" else method
        config = str(config_path(configs_dir, group, source))
        tasks: Sequence[str | None] = (
            TASKS[group] if method in ("single_task", "lightgbm") else [None]
        )
        for seed in range(seeds):
            for task in tasks:
                network = method != "lightgbm"
                keep = network and method in ENSEMBLE_METHODS and predictions_dir is not None
                jobs.append(
                    CensusJob(
                        group,
                        method,
                        seed,
                        config,
                        str(data_dir),
                        task,
                        tuple(overrides) if network else (),
                        str(predictions_dir) if keep else None,
                    )
                )
    return jobs


def run_job(job: CensusJob) -> dict[str, Any]:
    """Train one run; return its validation and test AUC per task (a JSON-ready dict)."""
    if job.method == "lightgbm":
        from mmoe.experiments.gbdt import lightgbm_job

        scores = lightgbm_job(job)
    else:
        scores = _network_job(job)
    return {**asdict(job), **scores}


def _network_job(job: CensusJob) -> dict[str, Any]:
    from mmoe.config import load_config, parse_config
    from mmoe.training.run import train

    sets = [f"data.data_dir={job.data_dir}", *job.overrides, f"training.seed={job.seed}"]
    config = load_config(job.config, sets)
    if job.task is not None:
        raw = config.model_dump(mode="json")
        raw["tasks"] = [t for t in raw["tasks"] if t["name"] == job.task]
        raw["training"]["monitor_task"] = None
        config = parse_config(raw)
    run = train(config, progress=False)
    if job.predictions_dir is not None:
        _save_predictions(run.model, config, Path(job.predictions_dir) / _predictions_name(job))
    return {
        "valid": {t: m["auc"] for t, m in run.metrics["valid"].items()},
        "test": {t: m["auc"] for t, m in run.metrics["test"].items()},
        "steps": run.metrics["steps"],
        "seconds": run.metrics["seconds"]["total"],
    }


def _predictions_name(job: CensusJob) -> str:
    return f"{job.method}-seed{job.seed}.npz"


def _save_predictions(trained: Any, config: Any, path: Path) -> None:
    """Validation and test logits ``(N, T)`` of a run, with labels and masks, as one ``.npz``."""
    import numpy as np

    from mmoe.data.sources import load_splits
    from mmoe.inference import predict_logits
    from mmoe.io import atomic_path

    splits = load_splits(config.data)
    arrays = {}
    for split in ("valid", "test"):
        batch = trained.preprocessor.transform(splits.get(split), labels=True)
        logits, _ = predict_logits(trained.model, batch)
        arrays[f"{split}_logits"] = logits.numpy()
        arrays[f"{split}_labels"] = batch.labels.numpy()
        arrays[f"{split}_mask"] = batch.label_mask.numpy()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def ensemble_rows(
    runs: Sequence[dict[str, Any]], group: int, predictions_dir: str | Path
) -> list[dict[str, Any]]:
    """One row per multi-task method: the seed ensemble (mean of all seeds' logits).

    Its test AUC is one number per task (one ensemble of every seed), so ``std`` is 0 and
    "best run" equals the mean.
    """
    import numpy as np

    from mmoe.training.metrics import roc_auc

    rows = []
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        files = [Path(predictions_dir) / f"{method}-seed{r['seed']}.npz" for r in mine]
        if method not in ENSEMBLE_METHODS or not all(f.is_file() for f in files):
            continue
        loaded = [np.load(f) for f in files]
        mean: dict[str, float] = {}
        for k, task in enumerate(TASKS[group]):
            logits = np.mean([a["test_logits"][:, k] for a in loaded], axis=0)
            mask = loaded[0]["test_mask"][:, k]
            mean[task] = round(roc_auc(loaded[0]["test_labels"][mask, k], logits[mask]), 6)
        rows.append(
            {
                "method": f"{method}_ensemble",
                "mean": mean,
                "std": dict.fromkeys(mean, 0.0),
                "best": dict(mean),
                "runs": len(files),
                "paper": None,
            }
        )
    return rows


def build_table(runs: Sequence[dict[str, Any]], group: int) -> list[dict[str, Any]]:
    """One row per method: mean/std test AUC per task, best-run test AUC, the paper's mean.

    Args:
        runs: results of :func:`run_job` (``method``, ``seed``, ``task``, ``valid``, ``test``).
        group: 1 or 2; its first task is the main task.

    Example:
        >>> runs = [{"method": "mmoe", "seed": s, "task": None,
        ...          "valid": {"income": v, "marital": 0.99}, "test": {"income": t, "marital": m}}
        ...         for s, v, t, m in [(0, 0.94, 0.941, 0.992), (1, 0.95, 0.943, 0.994)]]
        >>> row = build_table(runs, group=1)[0]
        >>> row["mean"]["income"], row["best"]["income"], row["best"]["marital"], row["runs"]
        (0.942, 0.943, 0.994, 2)
    """
    main = TASKS[group][0]
    rows = []
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        row: dict[str, Any] = {"method": method, "mean": {}, "std": {}, "best": {}}
        for task in TASKS[group]:
            # Single-task methods have one run per task; multi-task runs cover every task.
            scored = [r for r in mine if r.get("task") in (None, task)]
            aucs = [r["test"][task] for r in scored]
            row["mean"][task] = round(statistics.fmean(aucs), 6)
            row["std"][task] = round(statistics.pstdev(aucs), 6)
            select = main if scored[0].get("task") is None else task
            best = max(scored, key=lambda r, s=select: r["valid"][s])
            row["best"][task] = best["test"][task]
        row["runs"] = len({r["seed"] for r in mine})
        row["paper"] = PAPER_MEAN_TEST_AUC[group].get(method)
        rows.append(row)
    return rows


def format_table(rows: Sequence[dict[str, Any]], group: int) -> str:
    """The paper's layout as markdown: per task, our mean (± std), our best run, the paper."""
    tasks = TASKS[group]
    header = ["method", "seeds"]
    for task in tasks:
        header += [f"{task} mean ± std", f"{task} best run", f"{task} paper"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        label = LABELS.get(row["method"], row["method"])
        if row["method"].endswith("_ensemble"):
            label = f"{LABELS[row['method'][: -len('_ensemble')]]} ensemble of {row['runs']}"
        cells = [label, str(row["runs"])]
        for task in tasks:
            paper = row["paper"][task] if row["paper"] else None
            cells += [
                f"{row['mean'][task]:.4f} ± {row['std'][task]:.4f}",
                f"{row['best'][task]:.4f}",
                "-" if paper is None else f"{paper:.4f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
