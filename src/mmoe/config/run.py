"""The sections of a run config and the whole ``RunConfig`` (plain pydantic, no torch).

A run config has these sections::

    data:      where the rows come from (a CSV/Parquet table, a Parquet stream, census, movielens,
               synthetic)
    features:  which columns feed the model (categorical, numeric)
    tasks:     one entry per prediction target
    model:     the architecture and its sizes (name: shared_bottom | omoe | mmoe)
    training:  optimiser, schedule, epochs, early stopping, checkpoints, device, seed,
               task weighting
    metrics:   optional extra metrics (group_by: grouped AUC)
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mmoe.config.models import ModelConfig
from mmoe.specs import FeaturesConfig, TaskSpec


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


SplitKind = Literal["random", "hash", "time"]
Cutoff = int | float | str  # a number, or a date/time text the time column's type can parse


class _SplitOptions(_Section):
    """How a ``train`` input is cut into train / valid / test, and per-row sample weights.

    ``random``: a seeded random share of the rows. ``hash``: by a hash of ``split_column`` (e.g.
    a user id), so every row of one key lands in one split, the same one in a table and in a
    stream. ``time``: rows with ``split_column`` before ``valid_from`` train, rows from
    ``valid_from`` validate, rows from ``test_from`` test. ``valid``/``test`` files, when
    given, replace the part of the split they name (random splits only).
    """

    split: SplitKind = Field(
        default="random",
        description="How validation (and test) rows are taken from train when no file is given: "
        "random, hash (of split_column) or time (split_column against valid_from/test_from).",
    )
    split_column: str | None = Field(
        default=None,
        description="The key column of a hash split, or the time column of a time split.",
    )
    valid_fraction: float = Field(
        default=0.1,
        gt=0.0,
        lt=1.0,
        description="Share of the train rows held out for validation (random and hash splits).",
    )
    test_fraction: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Share of the train rows held out for testing (random and hash splits); "
        "0: no test split unless a test file is given.",
    )
    valid_from: Cutoff | None = Field(
        default=None,
        description="Time split: rows at or after this value (and before test_from) validate.",
    )
    test_from: Cutoff | None = Field(
        default=None,
        description="Time split: rows at or after this value test; None: no test split.",
    )
    split_seed: int = Field(default=0, description="Seed of random and hash splits.")
    weight_column: str | None = Field(
        default=None,
        description="Column of non-negative per-row sample weights, used in every task's "
        "loss and in the metrics (weighted AUC, log loss, RMSE). None: every row weighs 1.",
    )

    @model_validator(mode="after")
    def _check_split(self) -> _SplitOptions:
        if self.split != "random" and self.split_column is None:
            raise ValueError(f"split: {self.split} needs split_column (the column to split by)")
        if self.split == "time" and self.valid_from is None:
            raise ValueError("split: time needs valid_from (the first validation time)")
        if self.split != "time" and (self.valid_from, self.test_from) != (None, None):
            raise ValueError("valid_from/test_from need split: time")
        if self.split == "random" and self.split_column is not None:
            raise ValueError("split_column needs split: hash or time")
        if self.split != "time" and self.valid_fraction + self.test_fraction >= 1.0:
            raise ValueError("valid_fraction + test_fraction must leave training rows (< 1)")
        given = [k for k in ("valid", "test") if getattr(self, k, None) is not None]
        if self.split != "random" and given:
            raise ValueError(
                f"{' and '.join(given)} file(s) given with split: {self.split}; "
                "give either files or a hash/time split of train"
            )
        return self


class TableSource(_SplitOptions):
    """Rows from CSV or Parquet files with a header row, read whole into memory."""

    source: Literal["table"] = Field(
        default="table", description="Rows from your own CSV/TSV/Parquet files."
    )
    train: Path = Field(
        description="The training table: CSV (optionally .gz), TSV or Parquet, with a header "
        "row (relative paths: against the config file's folder)."
    )
    valid: Path | None = Field(
        default=None, description="Validation table; null: split from train (see split)."
    )
    test: Path | None = Field(
        default=None,
        description="Test table; null: split from train when test_fraction/test_from say so.",
    )
    na_values: list[str] | None = Field(
        default=None,
        description='CSV strings meaning "missing" in every column; null: pyarrow\'s defaults.',
    )


class ParquetDatasetSource(_SplitOptions):
    """Parquet files streamed in record batches, for data larger than memory.

    ``train``, ``valid`` and ``test`` are each a file, a folder (hive partitions ``key=value``
    allowed) or a glob. Only the columns the config uses are read. Every epoch shuffles the
    order of the row groups and mixes rows within windows of ``shuffle_buffer_rows``.
    """

    source: Literal["parquet_dataset"] = "parquet_dataset"
    train: str = Field(description="Parquet file, folder or glob of the training rows.")
    valid: str | None = Field(default=None, description="Validation rows; None: split train.")
    test: str | None = Field(default=None, description="Test rows; None: split train or none.")
    shuffle_buffer_rows: int = Field(
        default=1_000_000,
        ge=1,
        description="Rows mixed together when shuffling a stream (memory: about 50-100 bytes "
        "per row once encoded). Larger mixes better; the row groups' order is shuffled too.",
    )


class CensusSource(_Section):
    """The UCI Census-Income (KDD) files, read from ``data_dir`` (see ``mmoe.data.census``)."""

    source: Literal["census"] = Field(
        default="census", description="The UCI Census-Income (KDD) files of the paper."
    )
    data_dir: Path | None = Field(
        default=None,
        description="Folder holding census-income.data[.gz] and census-income.test[.gz].",
    )
    split_seed: int = Field(
        default=0, description="Seed of the 1:1 validation/test split of the test file."
    )
    download: bool = Field(
        default=False, description="Fetch the files from the UCI archive when absent."
    )


class SyntheticSource(_Section):
    """The paper's synthetic two-task regression problem (``mmoe.data.synthetic``)."""

    source: Literal["synthetic"] = Field(
        default="synthetic",
        description="The paper's two regression tasks y1, y2 on features x0 … x(d-1).",
    )
    correlation: float = Field(
        default=0.5, ge=-1.0, le=1.0, description="Cosine of the two tasks' weight vectors."
    )
    num_train: int = Field(
        default=100_000, ge=1, description="Training rows (with fewer, the models overfit)."
    )
    num_valid: int = Field(default=10_000, ge=1, description="Validation rows.")
    num_test: int = Field(default=10_000, ge=1, description="Test rows.")
    num_features: int = Field(default=100, ge=2, description="Input dimension d.")
    scale: float = Field(default=1.0, gt=0.0, description="c, the norm of both weight vectors.")
    num_sines: int = Field(default=10, ge=0, description="m, the number of sine terms.")
    alpha_std: float = Field(
        default=2.0, ge=0.0, description="α_i ~ N(0, alpha_std²) (β_i ~ N(0, 1))."
    )
    noise_std: float = Field(
        default=0.1, ge=0.0, description="Label noise ε ~ N(0, noise_std²) per task."
    )
    seed: int = Field(default=0, description="Seed of the weight vectors, constants and samples.")


class MovieLensSource(_Section):
    """MovieLens 100K (GroupLens ``ml-100k``) read from ``data_dir``, split by rating time
    (``mmoe.data.movielens``)."""

    source: Literal["movielens"] = "movielens"
    data_dir: Path | None = Field(
        default=None, description="The ml-100k directory holding u.data, u.user and u.item."
    )
    valid_from: datetime = Field(
        default=datetime(1998, 3, 8),
        description="Ratings from this time (UTC) on validate; earlier ones train.",
    )
    test_from: datetime = Field(
        default=datetime(1998, 4, 1),
        description="Ratings from this time (UTC) on are the test split.",
    )


class MemorySource(_Section):
    """Tables handed to ``mmoe.train(config, data={"train": df, ...})`` in Python."""

    source: Literal["memory"] = Field(
        default="memory",
        description="DataFrames or Arrow tables passed as mmoe.train(..., data={...}).",
    )
    valid_fraction: float = Field(
        default=0.1, gt=0.0, lt=1.0, description="Share of train held out when no valid given."
    )
    split_seed: int = Field(
        default=0, description="Seed of the random train/valid hold-out when no valid given."
    )


DataConfig = Annotated[
    TableSource
    | ParquetDatasetSource
    | CensusSource
    | SyntheticSource
    | MovieLensSource
    | MemorySource,
    Field(discriminator="source"),
]

#: Keys a saved ``config.json`` adds; ignored when it is read back as a config.
ARTIFACT_KEYS = ("format_version", "mmoe_version")

MonitorMetric = Literal["auc", "logloss", "gauc", "rmse", "mse", "mae", "r2"]


class TrainingConfig(_Section):
    """Optimisation, evaluation and early stopping."""

    epochs: int = Field(default=10, ge=1, description="Passes over the training rows (at most).")
    batch_size: int = Field(
        default=1024,
        ge=1,
        description="Rows per step; under several processes, the global batch.",
    )
    learning_rate: float = Field(
        default=1e-3, gt=0.0, description="Peak learning rate of the optimiser."
    )
    weight_decay: float = Field(
        default=0.0, ge=0.0, description="L2 (adam, torch_adam) or decoupled decay (adamw)."
    )
    seed: int = Field(default=0, description="Seed of the model initialisation and batch order.")
    eval_every_steps: int | None = Field(
        default=None, ge=1, description="Evaluate on validation every N steps; null: per epoch."
    )
    monitor_task: str | None = Field(
        default=None,
        description="Task whose validation metric selects the best model; null: the first.",
    )
    monitor_metric: MonitorMetric | None = Field(
        default=None,
        description="auc | logloss (binary), rmse | mse (regression); null: auc or mse.",
    )
    patience: int | None = Field(
        default=3,
        ge=1,
        description="Evaluations without improvement before stopping; null: never stop early.",
    )
    restore_best: bool = Field(
        default=True,
        description="End with the best evaluated weights; false: keep the last ones.",
    )
    num_threads: int | None = Field(
        default=None,
        ge=1,
        description="torch intra-op threads; null: torch's default (cores / processes).",
    )
    optimizer: Literal["adam", "adamw", "torch_adam"] = Field(
        default="adam",
        description="adam | adamw (one fused kernel on CPU) | torch_adam (torch.optim.Adam).",
    )
    lr_schedule: Literal["constant", "linear", "cosine"] = Field(
        default="constant",
        description="constant | linear | cosine: decay to 0 over the run, after warm-up.",
    )
    warmup_steps: int = Field(
        default=0, ge=0, description="Linear ramp of the learning rate over the first steps."
    )
    checkpoint_every_steps: int | None = Field(
        default=None,
        ge=1,
        description="Also checkpoint every N steps; null: at evaluations only.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="auto (CUDA when present, else CPU) | cpu | cuda."
    )
    log_to: list[Literal["tensorboard", "mlflow"]] = Field(
        default=[],
        description="Also send losses and metrics to: tensorboard (RUN/tensorboard) | mlflow.",
    )
    log_every_steps: int | None = Field(
        default=None,
        ge=1,
        description="With log_to: also log training loss and learning rate every N steps.",
    )
    task_weighting: Literal["fixed", "uncertainty", "dwa", "gradnorm"] = Field(
        default="fixed",
        description="how task losses are combined: fixed (the tasks' weight), uncertainty "
        "(learned log-variances, Kendall et al. 2018), dwa (dynamic weight average, Liu et al. "
        "2019) or gradnorm (Chen et al. 2018, on the last shared layer)",
    )
    dwa_temperature: float = Field(
        default=2.0, gt=0.0, description="temperature T of task_weighting: dwa (2 in the paper)"
    )
    gradnorm_alpha: float = Field(
        default=1.5,
        ge=0.0,
        description="asymmetry alpha of task_weighting: gradnorm (how hard slow tasks are pushed)",
    )
    ensemble_size: int = Field(
        default=1,
        ge=1,
        description="Train this many members with seeds seed, seed+1, ... and save one model "
        "predicting the mean of their logits (`mmoe train --seeds K`).",
    )


class MetricsConfig(_Section):
    """Evaluation metrics beyond the per-task defaults."""

    group_by: str | None = Field(
        default=None,
        description="column whose values group rows (e.g. user_id): binary tasks also report "
        "gauc, the row-weighted mean of per-group AUCs over groups holding both classes",
    )


class RunConfig(_Section):
    """A whole run: data, features, tasks, model, training."""

    name: str | None = Field(
        default=None, description="A label for the run; the default run directory uses it."
    )
    data: DataConfig = Field(description="Where the rows come from (chosen by source).")
    features: FeaturesConfig = Field(description="Which columns feed the model, and how.")
    tasks: list[TaskSpec] = Field(min_length=1, description="One entry per prediction target.")
    model: ModelConfig = Field(description="The architecture (chosen by name) and its sizes.")
    training: TrainingConfig = Field(
        default=TrainingConfig(), description="Optimiser, schedule, early stopping, device."
    )
    metrics: MetricsConfig = Field(
        default=MetricsConfig(), description="Metrics beyond the per-task defaults."
    )

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, raw: Any) -> Any:
        """Default to MMoE; synthetic data brings its own features and tasks."""
        if not isinstance(raw, dict):
            return raw
        raw = dict(raw)
        model = raw.get("model")
        if model is None or (isinstance(model, dict) and "name" not in model):
            raw["model"] = {"name": "mmoe", **(model or {})}
        data = raw.get("data")
        if isinstance(data, dict) and data.get("source") == "synthetic":
            d = data.get("num_features", 100)
            if isinstance(d, int):
                raw.setdefault("features", {"numeric": [f"x{i}" for i in range(d)]})
            raw.setdefault(
                "tasks",
                [{"name": y, "column": y, "type": "regression"} for y in ("y1", "y2")],
            )
        return raw

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        names = [t.name for t in self.tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"task name used twice: {', '.join(dupes)}")
        features = set(self.features.column_names)
        for task in self.tasks:
            if task.column in features:
                raise ValueError(
                    f"column {task.column!r} is both a feature and the label of task "
                    f"{task.name!r}; remove it from features"
                )
        weight = getattr(self.data, "weight_column", None)
        if weight is not None and weight in features:
            raise ValueError(f"column {weight!r} is both a feature and data.weight_column")
        monitor = self.training.monitor_task
        if monitor is not None and monitor not in names:
            raise ValueError(
                f"training.monitor_task {monitor!r} is not a task ({', '.join(names)})"
            )
        metric = self.training.monitor_metric
        if metric is not None:
            kind = self.monitor().type
            allowed = (
                ("auc", "logloss", "gauc") if kind == "binary" else ("rmse", "mse", "mae", "r2")
            )
            if metric not in allowed:
                raise ValueError(
                    f"training.monitor_metric {metric!r} does not apply to a {kind} task; "
                    f"use one of {', '.join(allowed)}"
                )
            if metric == "gauc" and self.metrics.group_by is None:
                raise ValueError("training.monitor_metric gauc needs metrics.group_by: COLUMN")
        return self

    def monitor(self) -> TaskSpec:
        """The task whose validation metric selects the best model (default: the first)."""
        name = self.training.monitor_task or self.tasks[0].name
        return next(t for t in self.tasks if t.name == name)

    def monitor_metric(self) -> MonitorMetric:
        if self.training.monitor_metric is not None:
            return self.training.monitor_metric
        return "auc" if self.monitor().type == "binary" else "mse"

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=1, ensure_ascii=False)


__all__ = [
    "ARTIFACT_KEYS",
    "CensusSource",
    "DataConfig",
    "MemorySource",
    "MetricsConfig",
    "MonitorMetric",
    "ParquetDatasetSource",
    "RunConfig",
    "SyntheticSource",
    "TableSource",
    "TrainingConfig",
]
