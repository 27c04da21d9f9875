"""The sections of a run config and the whole ``RunConfig`` (plain pydantic, no torch).

A run config has five sections::

    data:      where the rows come from (a CSV/Parquet table, census, movielens or synthetic)
    features:  which columns feed the model (categorical, numeric)
    tasks:     one entry per prediction target
    model:     the architecture and its sizes (name: shared_bottom | omoe | mmoe)
    training:  optimiser, schedule, epochs, early stopping, checkpoints, device, seed
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


class TableSource(_Section):
    """Rows from CSV or Parquet files with a header row."""

    source: Literal["table"] = "table"
    train: Path  # the training table
    valid: Path | None = None  # None: hold out valid_fraction of train
    test: Path | None = None  # None: no test metrics
    valid_fraction: float = Field(default=0.1, gt=0.0, lt=1.0)
    split_seed: int = 0  # seed of the train/valid hold-out when valid is None
    na_values: list[str] | None = None  # CSV strings meaning "missing"; None: pyarrow's default


class CensusSource(_Section):
    """The UCI Census-Income (KDD) files, read from ``data_dir`` (see ``mmoe.data.census``)."""

    source: Literal["census"] = "census"
    data_dir: Path | None = None  # holds census-income.data[.gz] and census-income.test[.gz]
    split_seed: int = 0  # seed of the 1:1 validation/test split of the test file
    download: bool = False  # fetch the files from the UCI archive when absent


class SyntheticSource(_Section):
    """The paper's synthetic two-task regression problem (``mmoe.data.synthetic``)."""

    source: Literal["synthetic"] = "synthetic"
    correlation: float = Field(default=0.5, ge=-1.0, le=1.0)  # cosine of the two weight vectors
    num_train: int = Field(default=100_000, ge=1)  # fewer rows: the models overfit
    num_valid: int = Field(default=10_000, ge=1)
    num_test: int = Field(default=10_000, ge=1)
    num_features: int = Field(default=100, ge=2)  # d
    scale: float = Field(default=1.0, gt=0.0)  # c, the norm of both weight vectors
    num_sines: int = Field(default=10, ge=0)  # m
    alpha_std: float = Field(default=2.0, ge=0.0)  # α_i ~ N(0, alpha_std²); β_i ~ N(0, 1)
    noise_std: float = Field(default=0.1, ge=0.0)  # ε ~ N(0, noise_std²)
    seed: int = 0  # seed of the weight vectors, constants and samples


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


DataConfig = Annotated[
    TableSource | CensusSource | SyntheticSource | MovieLensSource, Field(discriminator="source")
]

#: Keys a saved ``config.json`` adds; ignored when it is read back as a config.
ARTIFACT_KEYS = ("format_version", "mmoe_version")

MonitorMetric = Literal["auc", "logloss", "rmse", "mse"]


class TrainingConfig(_Section):
    """Optimisation, evaluation and early stopping."""

    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=1024, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0.0)  # peak learning rate of the optimiser
    weight_decay: float = Field(default=0.0, ge=0.0)
    seed: int = 0  # model initialisation and batch order
    eval_every_steps: int | None = Field(default=None, ge=1)  # None: once per epoch
    monitor_task: str | None = None  # task whose validation metric selects the best model
    monitor_metric: MonitorMetric | None = None  # None: auc (binary) or mse (regression)
    patience: int | None = Field(default=3, ge=1)  # evaluations without improvement; None: off
    restore_best: bool = True  # end with the best evaluated weights; false: the last weights
    num_threads: int | None = Field(default=None, ge=1)  # torch intra-op threads; None: torch's
    optimizer: Literal["adam", "adamw", "torch_adam"] = "adam"  # adam/adamw: fused kernel on CPU
    lr_schedule: Literal["constant", "linear", "cosine"] = "constant"  # decay after warm-up
    warmup_steps: int = Field(default=0, ge=0)  # linear ramp of the learning rate from ~0
    checkpoint_every_steps: int | None = Field(default=None, ge=1)  # None: at evaluations only
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when present, else CPU


class RunConfig(_Section):
    """A whole run: data, features, tasks, model, training."""

    name: str | None = None  # a label for the run; the default run directory uses it
    data: DataConfig
    features: FeaturesConfig
    tasks: list[TaskSpec] = Field(min_length=1)
    model: ModelConfig
    training: TrainingConfig = TrainingConfig()

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
        monitor = self.training.monitor_task
        if monitor is not None and monitor not in names:
            raise ValueError(
                f"training.monitor_task {monitor!r} is not a task ({', '.join(names)})"
            )
        metric = self.training.monitor_metric
        if metric is not None:
            kind = self.monitor().type
            allowed = ("auc", "logloss") if kind == "binary" else ("rmse", "mse")
            if metric not in allowed:
                raise ValueError(
                    f"training.monitor_metric {metric!r} does not apply to a {kind} task; "
                    f"use one of {', '.join(allowed)}"
                )
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
    "MonitorMetric",
    "RunConfig",
    "SyntheticSource",
    "TableSource",
    "TrainingConfig",
]
