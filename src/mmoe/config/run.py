"""The sections of a run config and the whole ``RunConfig`` (plain pydantic, no torch).

A run config has five sections::

    data:      where the rows come from (a CSV/Parquet table, census, or synthetic)
    features:  which columns feed the model (categorical, numeric)
    tasks:     one entry per prediction target
    model:     the architecture and its sizes (name: shared_bottom | omoe | mmoe)
    training:  optimiser, schedule, epochs, early stopping, checkpoints, device, seed
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mmoe.config.models import ModelConfig
from mmoe.specs import FeaturesConfig, TaskSpec


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TableSource(_Section):
    """Rows from CSV or Parquet files with a header row."""

    source: Literal["table"] = Field(
        default="table", description="Rows from your own CSV/TSV/Parquet files."
    )
    train: Path = Field(
        description="The training table: CSV (optionally .gz), TSV or Parquet, with a header row."
    )
    valid: Path | None = Field(
        default=None, description="Validation table; null: hold out valid_fraction of train."
    )
    test: Path | None = Field(
        default=None, description="Test table; null: test_fraction of train, or no test."
    )
    valid_fraction: float = Field(
        default=0.1,
        gt=0.0,
        lt=1.0,
        description="Share of train (after any test hold-out) held out when valid is null.",
    )
    test_fraction: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="Share of train held out as the test split when test is null; null: none.",
    )
    split_seed: int = Field(
        default=0, description="Seed of the random train/valid hold-out when valid is null."
    )
    na_values: list[str] | None = Field(
        default=None,
        description='CSV strings meaning "missing" in every column; null: pyarrow\'s defaults.',
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
    TableSource | CensusSource | SyntheticSource | MemorySource, Field(discriminator="source")
]

#: Keys a saved ``config.json`` adds; ignored when it is read back as a config.
ARTIFACT_KEYS = ("format_version", "mmoe_version")

MonitorMetric = Literal["auc", "logloss", "rmse", "mse"]


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
    "MemorySource",
    "MonitorMetric",
    "RunConfig",
    "SyntheticSource",
    "TableSource",
    "TrainingConfig",
]
