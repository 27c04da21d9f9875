"""A run's inputs: the fitted preprocessor, the training batch source, validation and test.

In-memory sources (tables, census, synthetic) are read whole, encoded once and served by
:class:`mmoe.data.loaders.InMemorySource`; a ``parquet_dataset`` is fitted in one streaming pass
and served by :class:`mmoe.data.streaming.StreamingSource`, its validation and test splits
evaluated as streams.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mmoe.config import ParquetDatasetSource, RunConfig
from mmoe.data.batch import Batch
from mmoe.data.loaders import BatchSource, InMemorySource
from mmoe.data.preprocessor import Preprocessor
from mmoe.data.sources import load_splits, memory_splits
from mmoe.data.streaming import EvalStream, StreamingSource, open_stream
from mmoe.data.tables import group_codes
from mmoe.errors import ConfigError, DataError
from mmoe.training.distributed import DistContext
from mmoe.training.evaluation import LabelledStream, evaluate


@dataclass
class RunInputs:
    preprocessor: Preprocessor
    source: BatchSource
    valid: Batch | LabelledStream
    test: Batch | LabelledStream | None
    #: Group keys of the validation and test rows for the grouped AUC (``metrics.group_by``;
    #: in-memory splits only).
    valid_groups: np.ndarray | None = None
    test_groups: np.ndarray | None = None
    #: Rows of each split read into memory (empty for a stream), for the run's provenance.
    rows: dict[str, int] = field(default_factory=dict)


def prepare_inputs(
    config: RunConfig,
    preprocessor: Preprocessor | None,
    dist: DistContext,
    device: torch.device,
    data: Mapping[str, Any] | None = None,
) -> RunInputs:
    """Read (or open) the data, fit ``preprocessor`` unless one is given, build the source.

    ``data``: tables in memory (``{"train": df, "valid": df, "test": df}``) instead of the
    config's ``data:`` section (``mmoe.train(config, data=...)``).
    """
    weight_column = getattr(config.data, "weight_column", None)
    if preprocessor is None:
        preprocessor = Preprocessor(config.features, config.tasks, weight_column)
    if isinstance(config.data, ParquetDatasetSource) and data is None:
        return _streamed(config, config.data, preprocessor, dist, device)
    splits = load_splits(config.data) if data is None else memory_splits(data, config.data)
    if not preprocessor.is_fitted:
        preprocessor.fit(splits.train)
    # Encode every split before training, so a bad validation or test file fails fast.
    train_batch = preprocessor.transform(splits.train, labels=True)
    valid = preprocessor.transform(splits.valid, labels=True)
    test = None if splits.test is None else preprocessor.transform(splits.test, labels=True)
    source = InMemorySource(
        train_batch.to(device),
        config.training.batch_size,
        config.training.seed,
        rank=dist.rank,
        world_size=dist.world_size,
    )
    group_by = config.metrics.group_by
    valid_groups = None if group_by is None else group_codes(splits.valid, group_by)
    test_groups = (
        None if group_by is None or splits.test is None else group_codes(splits.test, group_by)
    )
    rows = {"train": splits.train.num_rows, "valid": splits.valid.num_rows}
    if splits.test is not None:
        rows["test"] = splits.test.num_rows
    return RunInputs(preprocessor, source, valid, test, valid_groups, test_groups, rows)


def _streamed(
    config: RunConfig,
    data: ParquetDatasetSource,
    preprocessor: Preprocessor,
    dist: DistContext,
    device: torch.device,
) -> RunInputs:
    if not config.features.plain_numeric:
        raise ConfigError(
            "numeric encodings other than standardize are fitted on whole training columns, "
            "which a parquet_dataset stream does not hold; use encoding: standardize, or "
            "data.source: table"
        )
    columns = [*config.features.column_names, *(t.column for t in config.tasks)]
    if data.weight_column is not None:
        columns.append(data.weight_column)
    streams = open_stream(data, columns)
    if not preprocessor.is_fitted:
        preprocessor.fit_batches(streams.train.tables())
    source = StreamingSource(
        streams.train,
        preprocessor,
        config.training.batch_size,
        config.training.seed,
        rank=dist.rank,
        world_size=dist.world_size,
        shuffle_buffer_rows=data.shuffle_buffer_rows,
        device=device,
    )
    valid = EvalStream(streams.valid, preprocessor)
    test = None if streams.test is None else EvalStream(streams.test, preprocessor)
    return RunInputs(preprocessor, source, valid, test)


def evaluate_stream_split(trained: Any, split: str) -> dict[str, dict[str, float]]:
    """Metrics of a trained model (``mmoe.predictor.TrainedModel``) on a split of its
    ``parquet_dataset``, streamed (``mmoe evaluate RUN valid|test``)."""
    pre = trained.preprocessor
    columns = [*pre.features.column_names, *(t.column for t in pre.tasks)]
    if pre.weight_column is not None:
        columns.append(pre.weight_column)
    streams = open_stream(trained.config.data, columns)
    part = getattr(streams, split)
    if part is None:
        raise DataError(f"the configured data has no {split!r} split")
    return evaluate(trained.model, EvalStream(part, pre), pre.tasks)
