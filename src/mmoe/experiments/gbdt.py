"""A gradient-boosted single-task baseline (LightGBM) on the same census split and encoding.

What a ranking team would otherwise use: one boosted-tree model per task, on the same features
as the networks (categorical codes from mmoe's preprocessor, passed to LightGBM as categorical;
numeric columns as raw standardised values, which trees split exactly as the raw ones), with the
number of trees chosen by early stopping on the task's validation AUC. Needs the ``lightgbm``
extra: ``pip install 'mmoe[lightgbm]'``.

Tuning (``mmoe paper tune --method lightgbm``) gives the trees the same treatment as the
networks: a random search of :data:`LIGHTGBM_SPACE` (learning rate, leaves, min data in leaf,
feature fraction) per task, trial 0 being :data:`LIGHTGBM_PARAMS`, selected on validation AUC
only. The search record ``tuning/group{G}-lightgbm.json`` beside the configs holds the chosen
parameters per task; :func:`lightgbm_job` uses them when the record exists.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from mmoe.errors import ConfigError
from mmoe.experiments.census_job import CensusJob

#: Fixed, commonly used settings; only the number of trees is selected (on validation data).
LIGHTGBM_PARAMS = {
    "learning_rate": 0.05,
    "num_leaves": 63,
    "min_data_in_leaf": 20,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "feature_fraction": 0.8,
    "num_threads": 1,  # one process per core runs the seeds in parallel
    "verbose": -1,
}
NUM_ROUNDS = 2000  # upper bound; early stopping on validation AUC picks the number of trees
#: Values tried per parameter by the search (the parameters the issue names).
LIGHTGBM_SPACE: dict[str, list[Any]] = {
    "learning_rate": [0.02, 0.05, 0.1],
    "num_leaves": [15, 31, 63, 127, 255],
    "min_data_in_leaf": [5, 20, 50, 100, 200],
    "feature_fraction": [0.5, 0.65, 0.8, 0.9, 1.0],
}


def tuned_params_path(config: str | Path) -> Path:
    """Where the LightGBM search record of a census config's group lives."""
    config = Path(config)
    group = config.name.split("-")[0]  # groupG
    return config.parent / "tuning" / f"{group}-lightgbm.json"


def tuned_params(config: str | Path, task: str) -> dict[str, Any]:
    """The searched parameters chosen for ``task``, or the fixed ones without a record."""
    from mmoe.io import read_json

    path = tuned_params_path(config)
    if not path.is_file():
        return dict(LIGHTGBM_PARAMS)
    best = read_json(path).get("best", {})
    return {**LIGHTGBM_PARAMS, **best.get(task, {})}


def sample_params(trials: int, search_seed: int = 0) -> list[dict[str, Any]]:
    """Trial 0 is :data:`LIGHTGBM_PARAMS`; the others draw each searched parameter at random.

    Example:
        >>> [p["num_leaves"] for p in sample_params(3)]
        [63, 127, 127]
    """
    rng = random.Random(search_seed)
    drawn = [dict(LIGHTGBM_PARAMS)]
    seen = {tuple(LIGHTGBM_PARAMS[k] for k in LIGHTGBM_SPACE)}
    while len(drawn) < trials:
        choice = {k: rng.choice(v) for k, v in LIGHTGBM_SPACE.items()}
        key = tuple(choice.values())
        if key not in seen:
            seen.add(key)
            drawn.append({**LIGHTGBM_PARAMS, **choice})
    return drawn


def encoded_splits(config_path: str, data_dir: str, task: str) -> dict[str, Any]:
    """Train/valid/test matrices and labels of one task, encoded by mmoe's preprocessor."""
    from mmoe.config import load_config
    from mmoe.data.preprocessor import Preprocessor
    from mmoe.data.sources import load_splits

    config = load_config(config_path, [f"data.data_dir={data_dir}"])
    # Trees need no numeric encoding (splits on standardised values are splits on raw ones).
    features = config.features.model_copy(
        update={
            "numeric_encoding": "standardize",
            "numeric": [f.model_copy(update={"encoding": None}) for f in config.features.numeric],
        }
    )
    tasks = [t for t in config.tasks if t.name == task]
    splits = load_splits(config.data)
    pre = Preprocessor(features, tasks).fit(splits.train)

    def encode(table: Any) -> tuple[np.ndarray, np.ndarray]:
        batch = pre.transform(table, labels=True)
        assert batch.labels is not None
        x = np.hstack([batch.categorical.numpy(), batch.numeric.numpy()]).astype(np.float64)
        return x, batch.labels[:, 0].numpy()

    assert splits.test is not None
    return {
        "train": encode(splits.train),
        "valid": encode(splits.valid),
        "test": encode(splits.test),
        "categorical": list(range(len(features.categorical))),
    }


def fit_lightgbm(
    data: dict[str, Any], params: dict[str, Any], seed: int, num_rounds: int = NUM_ROUNDS
) -> dict[str, Any]:
    """One early-stopped booster (at most ``num_rounds`` trees): validation and test AUC, trees,
    seconds."""
    try:
        import lightgbm
    except ImportError:
        raise ConfigError("the LightGBM baseline needs: pip install 'mmoe[lightgbm]'") from None
    from mmoe.training.metrics import roc_auc

    start = time.perf_counter()
    (x_train, y_train), (x_valid, y_valid) = data["train"], data["valid"]
    x_test, y_test = data["test"]
    cats = data["categorical"]
    params = {**params, "objective": "binary", "metric": "auc", "seed": seed}
    booster = lightgbm.train(
        params,
        lightgbm.Dataset(x_train, y_train, categorical_feature=cats),
        num_boost_round=num_rounds,
        valid_sets=[lightgbm.Dataset(x_valid, y_valid, categorical_feature=cats)],
        callbacks=[lightgbm.early_stopping(50, verbose=False)],
    )
    valid = booster.predict(x_valid, num_iteration=booster.best_iteration)
    test = booster.predict(x_test, num_iteration=booster.best_iteration)
    return {
        "valid": roc_auc(y_valid, valid),
        "test": roc_auc(y_test, test),
        "trees": booster.best_iteration,
        "seconds": round(time.perf_counter() - start, 1),
    }


def lightgbm_job(job: CensusJob) -> dict[str, Any]:
    """Train LightGBM for ``job.task`` with seed ``job.seed`` (tuned parameters when searched)."""
    assert job.task is not None
    data = encoded_splits(job.config, job.data_dir, job.task)
    result = fit_lightgbm(data, tuned_params(job.config, job.task), job.seed)
    return {
        "valid": {job.task: result["valid"]},
        "test": {job.task: result["test"]},
        "steps": result["trees"],
        "seconds": result["seconds"],
    }


def tune_task(config: str, data_dir: str, task: str, trials: int, search_seed: int) -> dict:
    """Random search for one task (seed 0 per trial), selected on validation AUC only."""
    data = encoded_splits(config, data_dir, task)
    results = []
    for index, params in enumerate(sample_params(trials, search_seed)):
        fit = fit_lightgbm(data, params, seed=0)
        searched = {k: params[k] for k in LIGHTGBM_SPACE}
        results.append(
            {"index": index, "params": searched, "valid_auc": fit["valid"], "trees": fit["trees"]}
        )
        results[-1]["seconds"] = fit["seconds"]
    best = max(results, key=lambda r: (r["valid_auc"], -r["index"]))
    return {"task": task, "trials": results, "best": best["params"]}


def tune_job(args: tuple[str, str, str, int, int]) -> dict:
    """:func:`tune_task` of one ``(config, data_dir, task, trials, search_seed)`` (for workers)."""
    return tune_task(*args)


def format_lightgbm_search(record: dict[str, Any]) -> str:
    """Every trial of every task as markdown, best first per task."""
    lines = []
    for task, search in record["tasks"].items():
        lines += [f"## {task}", "", "| trial | valid AUC | trees | seconds | parameters |"]
        lines.append("|---|---|---|---|---|")
        for r in sorted(search["trials"], key=lambda r: -r["valid_auc"]):
            params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
            lines.append(
                f"| {r['index']} | {r['valid_auc']:.4f} | {r['trees']} | {r['seconds']:.0f} "
                f"| {params} |"
            )
        lines.append("")
    return "\n".join(lines)
