"""A gradient-boosted single-task baseline (LightGBM) on the same census split and encoding.

What a ranking team would otherwise use: one boosted-tree model per task, on the same features
as the networks (categorical codes from mmoe's preprocessor, passed to LightGBM as categorical),
with the number of trees chosen by early stopping on the task's validation AUC. Needs the
``lightgbm`` extra: ``pip install 'mmoe[lightgbm]'``.
"""

from __future__ import annotations

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


def lightgbm_job(job: CensusJob) -> dict[str, Any]:
    """Train LightGBM for ``job.task`` with seed ``job.seed``; validation and test AUC."""
    try:
        import lightgbm
    except ImportError:
        raise ConfigError("the LightGBM baseline needs: pip install 'mmoe[lightgbm]'") from None
    from mmoe.config import load_config
    from mmoe.data.preprocessor import Preprocessor
    from mmoe.data.sources import load_splits
    from mmoe.training.metrics import roc_auc

    config = load_config(job.config, [f"data.data_dir={job.data_dir}"])
    tasks = [t for t in config.tasks if t.name == job.task]
    splits = load_splits(config.data)
    pre = Preprocessor(config.features, tasks).fit(splits.train)

    def encode(table: Any) -> tuple[np.ndarray, np.ndarray]:
        batch = pre.transform(table, labels=True)
        assert batch.labels is not None
        x = np.hstack([batch.categorical.numpy(), batch.numeric.numpy()]).astype(np.float64)
        return x, batch.labels[:, 0].numpy()

    (x_train, y_train), (x_valid, y_valid) = encode(splits.train), encode(splits.valid)
    assert splits.test is not None
    x_test, y_test = encode(splits.test)
    categorical = list(range(len(config.features.categorical)))
    params = {**LIGHTGBM_PARAMS, "objective": "binary", "metric": "auc", "seed": job.seed}
    booster = lightgbm.train(
        params,
        lightgbm.Dataset(x_train, y_train, categorical_feature=categorical),
        num_boost_round=NUM_ROUNDS,
        valid_sets=[lightgbm.Dataset(x_valid, y_valid, categorical_feature=categorical)],
        callbacks=[lightgbm.early_stopping(50, verbose=False)],
    )
    valid = roc_auc(y_valid, booster.predict(x_valid, num_iteration=booster.best_iteration))
    test = roc_auc(y_test, booster.predict(x_test, num_iteration=booster.best_iteration))
    return {
        "valid": {job.task: valid},
        "test": {job.task: test},
        "steps": booster.best_iteration,
        "seconds": None,
    }
