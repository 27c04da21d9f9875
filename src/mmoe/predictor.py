"""``TrainedModel``: a run directory's preprocessor and network, ready to score new tables."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from mmoe.artifacts import load_run_files, save_run_files
from mmoe.config import RunConfig
from mmoe.data.batch import Batch
from mmoe.data.checks import warn_undefined_metrics, warn_unseen_categories
from mmoe.data.preprocessor import Preprocessor
from mmoe.data.sources import read_any
from mmoe.data.tables import as_arrow, group_codes
from mmoe.data.targets import to_original_units
from mmoe.errors import ConfigError
from mmoe.inference import predict_logits
from mmoe.models.base import MultiTaskModel
from mmoe.training.evaluation import evaluate


class TrainedModel:
    """A fitted preprocessor and a trained network, ready to predict on new tables.

    Args:
        config: the run config the model was trained with.
        preprocessor: the fitted preprocessor.
        model: the trained network (moved to the CPU; prediction runs there).

    Example:
        >>> import mmoe
        >>> run = mmoe.train({"data": {"source": "synthetic", "num_train": 500},
        ...                   "training": {"epochs": 1}}, progress=False)
        >>> trained = run.model
        >>> trained.task_names
        ('y1', 'y2')
    """

    def __init__(self, config: RunConfig, preprocessor: Preprocessor, model: MultiTaskModel):
        self.config = config
        self.preprocessor = preprocessor
        self.model = model.cpu().eval()

    @property
    def task_names(self) -> tuple[str, ...]:
        return self.model.task_names

    # ---- prediction ----------------------------------------------------------------------------

    def predict(self, data: Any, batch_size: int = 65_536) -> Any:
        """Per-task predictions as a DataFrame, one column per task, input row order kept.

        Binary tasks give the probability of the positive class; regression tasks give the value.
        ``data`` is a pandas DataFrame, a pyarrow Table or a CSV/Parquet path; categories unseen
        in training map to the unknown index, a missing feature column is a ``DataError``.
        """
        import pandas as pd

        tasks = self.preprocessor.tasks
        values = to_original_units(
            self.preprocessor.target_stats_, tasks, self.predict_logits(data, batch_size)
        )
        out = {}
        for k, task in enumerate(tasks):
            z = values[:, k]
            out[task.name] = 1.0 / (1.0 + np.exp(-z)) if task.type == "binary" else z
        return pd.DataFrame(out)

    def predict_logits(self, data: Any, batch_size: int = 65_536) -> np.ndarray:
        """Raw model outputs ``(N, T)``: logits of binary tasks, values of regression tasks.

        A standardised regression task's value is in standard deviations of its target; its
        own unit is ``value * std + mean`` with ``preprocessor.target_stats_[task]``
        (:meth:`predict` does that).
        """
        batch = self._encode(self._features(data), labels=False)
        with _threads_for(len(batch)):
            logits, _ = predict_logits(self.model, batch, batch_size)
        return logits.numpy().astype(np.float64)

    def gate_weights(self, data: Any, batch_size: int = 65_536) -> np.ndarray:
        """Gate weights ``(N, T, E)``: how each task mixes the experts on each row."""
        if not self.model.has_gates:
            raise ConfigError(f"{type(self.model).__name__} has no gates")
        batch = self._encode(self._features(data), labels=False)
        with _threads_for(len(batch)):
            _, gates = predict_logits(self.model, batch, batch_size, gates=True)
        assert gates is not None
        return gates.numpy()

    def evaluate(self, data: Any, batch_size: int = 65_536) -> dict[str, dict[str, float]]:
        """Per-task metrics on a labelled table (every task's label column must be present).

        Regression metrics are in the target's own unit; with ``metrics.group_by`` in the run
        config, binary tasks also get the grouped AUC (the column must be in the table).
        """
        table = self._table(data, warn=False)
        batch = self._encode(table, labels=True)
        group_by = self.config.metrics.group_by
        groups = None if group_by is None else group_codes(table, group_by)
        metrics = evaluate(
            self.model,
            batch,
            self.preprocessor.tasks,
            batch_size,
            target_stats=self.preprocessor.target_stats_,
            groups=groups,
        )
        warn_undefined_metrics(metrics)
        return metrics

    def _table(self, data: Any, warn: bool = True) -> Any:
        table = as_arrow(read_any(data, self.config.data) if isinstance(data, str | Path) else data)
        if warn:
            warn_unseen_categories(table, self.preprocessor.vocabularies_)
        return table

    def _encode(self, table: Any, labels: bool) -> Batch:
        """``preprocessor.transform(table)``, then the unseen-category warning from its codes.

        The codes the transform computed say which values are outside the vocabularies (index
        0), so the warning costs no second lookup.
        """
        batch = self.preprocessor.transform(table, labels=labels)
        if isinstance(table, pa.Table):
            names = [f.name for f in self.preprocessor.features.categorical]
            codes = batch.categorical[:, : len(names)].numpy()
            warn_unseen_categories(
                table,
                self.preprocessor.vocabularies_,
                {name: codes[:, j] for j, name in enumerate(names)},
            )
        return batch

    def _features(self, data: Any) -> Any:
        """The feature columns of ``data``; a DataFrame's are converted one column at a time.

        ``pa.Table.from_pandas`` on the whole frame costs more per call than the model on a
        few rows (every column, the index, pandas metadata); the transform needs only these.
        """
        import pandas as pd

        if not isinstance(data, pd.DataFrame) or not data.columns.is_unique:
            return self._table(data, warn=False)
        names = [c for c in self.preprocessor.features.column_names if c in data.columns]
        try:
            return pa.table({c: pa.Array.from_pandas(data[c]) for c in names})
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return data  # the transform's own conversion reports the column

    # ---- persistence ---------------------------------------------------------------------------

    def save(self, run_dir: str | Path) -> None:
        """Write the config, preprocessor and weights files into ``run_dir``."""
        save_run_files(run_dir, self.config, self.preprocessor, self.model)

    @classmethod
    def load(cls, run_dir: str | Path) -> TrainedModel:
        """Rebuild a trained model from a run directory (JSON + safetensors only)."""
        return cls(*load_run_files(run_dir))


#: Inputs of at most this many rows run on one intra-op thread. On this 2-core machine, shared
#: with other work, a 1-row census MMoE forward cost 39 ms of CPU with 2 threads and 0.43 ms
#: with 1 (256 rows: 67 and 4.9 ms): waiting for the other thread dominates small batches.
SMALL_BATCH_ROWS = 1024


@contextlib.contextmanager
def _threads_for(rows: int) -> Iterator[None]:
    """One torch thread while scoring a small input (restored afterwards; 0.3 µs to switch)."""
    threads = torch.get_num_threads()
    if rows > SMALL_BATCH_ROWS or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def load(run_dir: str | Path) -> TrainedModel:
    """Load a run directory written by ``mmoe train`` (see :class:`TrainedModel`)."""
    return TrainedModel.load(run_dir)


__all__ = ["TrainedModel", "load"]
