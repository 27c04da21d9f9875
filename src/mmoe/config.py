"""The typed run configuration: YAML in, validated, ``--set`` overrides, JSON out.

A run config has five sections::

    data:      where the rows come from (a CSV/Parquet table, census, or synthetic)
    features:  which columns feed the model (categorical, numeric)
    tasks:     one entry per prediction target
    model:     the architecture and its sizes (name: shared_bottom | omoe | mmoe)
    training:  optimiser, epochs, early stopping, seed

Every section forbids unknown keys; a typo, a wrong type or an inconsistent choice is a
``ConfigError`` whose message is one line naming the key and the fix.

Example:
    >>> cfg = parse_config({"data": {"source": "synthetic"}, "model": {"name": "mmoe"}})
    >>> cfg.model.num_experts, [t.name for t in cfg.tasks]
    (8, ['y1', 'y2'])
    >>> parse_config(cfg.model_dump(), ["model.num_experts=4"]).model.num_experts
    4
"""

from __future__ import annotations

import difflib
import json
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mmoe.errors import ConfigError
from mmoe.features import FeaturesConfig, TaskSpec
from mmoe.models.registry import ARCHITECTURES, ModelConfig


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


DataConfig = Annotated[TableSource | CensusSource | SyntheticSource, Field(discriminator="source")]

#: Keys a saved ``config.json`` adds; ignored when it is read back as a config.
ARTIFACT_KEYS = ("format_version", "mmoe_version")

MonitorMetric = Literal["auc", "logloss", "rmse", "mse"]


class TrainingConfig(_Section):
    """Optimisation, evaluation and early stopping."""

    epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=1024, ge=1)
    learning_rate: float = Field(default=1e-3, gt=0.0)  # Adam
    weight_decay: float = Field(default=0.0, ge=0.0)
    seed: int = 0  # model initialisation and batch order
    eval_every_steps: int | None = Field(default=None, ge=1)  # None: once per epoch
    monitor_task: str | None = None  # task whose validation metric selects the best model
    monitor_metric: MonitorMetric | None = None  # None: auc (binary) or mse (regression)
    patience: int | None = Field(default=3, ge=1)  # evaluations without improvement; None: off
    restore_best: bool = True  # end with the best evaluated weights; false: the last weights
    num_threads: int | None = Field(default=None, ge=1)  # torch intra-op threads; None: torch's


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


# ---- loading and overrides ---------------------------------------------------------------------


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML (or JSON) run config, apply ``key.path=value`` overrides and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with data, features, tasks, model, training")
    return parse_config(raw, overrides, origin=str(path))


def parse_config(
    raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = (), origin: str = "config"
) -> RunConfig:
    """Validate a config mapping after applying ``overrides`` (``"model.num_experts=4"``)."""
    raw = json.loads(json.dumps(raw, default=str))  # deep copy; paths become strings
    for key in ARTIFACT_KEYS:  # a run directory's config.json is a valid config too
        raw.pop(key, None)
    for item in overrides:
        apply_override(raw, item)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {describe_validation_error(exc, raw)}") from None


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set ``a.b.c=value`` in ``raw``; the value is parsed as YAML (``4``, ``[16, 8]``, ``true``).

    A numeric path element indexes a list: ``tasks.0.weight=2``.
    """
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. model.num_experts=4")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    parts = key.strip().split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        node = _child(node, part, ".".join(parts[: i + 1]), create=True)
    last = parts[-1]
    if isinstance(node, list):
        node[_index(node, last, key)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"--set {key}: {'.'.join(parts[:-1])} is not a section")


def _child(node: Any, part: str, path: str, create: bool) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, path)]
    if not isinstance(node, dict):
        raise ConfigError(f"--set {path}: the parent is a value, not a section")
    if part not in node or node[part] is None:
        node[part] = {}
    return node[part]


def _index(node: list[Any], part: str, path: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"--set {path}: {part!r} is not an index of a list of {len(node)}")
    return int(part)


# ---- one-line error messages -------------------------------------------------------------------


def describe_validation_error(exc: ValidationError, raw: dict[str, Any]) -> str:
    """Pydantic's errors as one line: ``model.num_expert: unknown key (did you mean …?)``."""
    parts = []
    for err in exc.errors(include_url=False):
        loc, model_class = _resolve(err["loc"])
        where = ".".join(str(p) for p in loc) or "config"
        if err["type"] == "extra_forbidden" and model_class is not None:
            allowed = list(model_class.model_fields)
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
            parts.append(f"{where}: unknown key ({hint})")
        elif err["type"] == "union_tag_invalid":
            tag = "source" if loc and loc[0] == "data" else "name"
            choices = _tags(loc[0] if loc else "")
            parts.append(f"{where}.{tag}: {err['input'].get(tag)!r} is not one of {choices}")
        elif err["type"] == "union_tag_not_found":
            parts.append(f"{where}: missing 'source' (one of {_tags('data')})")
        elif err["type"] == "missing":
            parts.append(f"{where}: required key is missing")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{where}: {msg}" if loc else msg)
    return "; ".join(parts)


def _tags(section: Any) -> str:
    if section == "model":
        return ", ".join(ARCHITECTURES)
    return "table, census, synthetic"


def _resolve(loc: tuple[Any, ...]) -> tuple[list[Any], type[BaseModel] | None]:
    """Drop union tags from ``loc`` and find the model class holding its last key."""
    shown: list[Any] = []
    current: Any = RunConfig
    holder: type[BaseModel] | None = None
    for part in loc:
        classes = _model_classes(current)
        if isinstance(part, int):
            shown.append(part)
            continue
        tagged = [c for c in classes if _tag_of(c) == part]
        if tagged and len(classes) > 1:
            current = tagged[0]  # a discriminated-union tag, not a key the user wrote
            continue
        shown.append(part)
        holder = classes[0] if len(classes) == 1 else None
        field = holder.model_fields.get(part) if holder is not None else None
        current = field.annotation if field is not None else None
    return shown, holder


def _model_classes(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is None:
        return []
    args = typing.get_args(annotation)
    if origin is Annotated:
        args = args[:1]
    found: list[type[BaseModel]] = []
    for arg in args:
        found.extend(_model_classes(arg))
    return found


def _tag_of(cls: type[BaseModel]) -> str | None:
    for key in ("name", "source"):
        field = cls.model_fields.get(key)
        if field is not None and isinstance(field.default, str):
            return field.default
    return None


__all__ = [
    "CensusSource",
    "DataConfig",
    "RunConfig",
    "SyntheticSource",
    "TableSource",
    "TrainingConfig",
    "apply_override",
    "load_config",
    "parse_config",
]
