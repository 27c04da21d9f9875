"""Feature and task specifications, and the ``Preprocessor`` that turns a table into a ``Batch``.

The preprocessor follows scikit-learn's contract: ``__init__`` stores the specs, ``fit`` learns
vocabularies and statistics into trailing-underscore attributes and returns ``self``, ``transform``
refuses to run unfitted. Its state is plain JSON (``to_dict`` / ``from_dict``), reloaded exactly.

Conventions (DESIGN.md §4): vocabulary index 0 is reserved for unknown, missing and rare values
(fewer than ``min_frequency`` training rows); known tokens follow by descending training frequency,
ties broken by the token's text. Numeric columns: optional ``log1p``, missing → training mean,
then standardised with the training mean and (population) standard deviation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mmoe.data.batch import Batch
from mmoe.data.tables import as_arrow, canonical_strings, canonical_token, column, to_float
from mmoe.errors import ArtifactError, DataError
from mmoe.layers import InputSpec

PREPROCESSOR_FORMAT_VERSION = 1

Scalar = str | bool | int | float


class CategoricalFeature(BaseModel):
    """A categorical column, embedded through a learned table."""

    model_config = ConfigDict(extra="forbid")

    name: str
    embedding_dim: int | None = Field(default=None, ge=1)  # None: features.embedding_dim
    min_frequency: int | None = Field(default=None, ge=1)  # None: features.min_frequency


class NumericFeature(BaseModel):
    """A numeric column, standardised with training statistics."""

    model_config = ConfigDict(extra="forbid")

    name: str
    transform: Literal["none", "log1p"] = "none"  # log1p: sign(x)·log(1+|x|) for heavy tails


def _names_to_specs(value: Any) -> Any:
    """Let a feature be written as just its column name."""
    if isinstance(value, list):
        return [{"name": v} if isinstance(v, str) else v for v in value]
    return value


class FeaturesConfig(BaseModel):
    """The ``features:`` section: which columns feed the model and how.

    Example (YAML)::

        features:
          categorical: [occupation, {name: zip, embedding_dim: 8, min_frequency: 5}]
          numeric: [age, {name: capital gains, transform: log1p}]
          embedding_dim: 4
    """

    model_config = ConfigDict(extra="forbid")

    categorical: list[CategoricalFeature] = []
    numeric: list[NumericFeature] = []
    embedding_dim: int = Field(default=4, ge=1)  # default width of every categorical embedding
    min_frequency: int = Field(default=1, ge=1)  # rarer training tokens map to index 0

    _split_names = field_validator("categorical", "numeric", mode="before")(_names_to_specs)

    @model_validator(mode="after")
    def _check(self) -> FeaturesConfig:
        names = self.column_names
        if not names:
            raise ValueError("no feature columns: list some under categorical and/or numeric")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"feature column listed more than once: {', '.join(dupes)}")
        return self

    @property
    def column_names(self) -> list[str]:
        return [f.name for f in self.categorical] + [f.name for f in self.numeric]

    def embedding_dim_of(self, feature: CategoricalFeature) -> int:
        return feature.embedding_dim or self.embedding_dim

    def min_frequency_of(self, feature: CategoricalFeature) -> int:
        return feature.min_frequency or self.min_frequency


class TaskSpec(BaseModel):
    """One prediction target, read from one column of the table.

    ``binary`` labels are 1 where the column value is in ``positive``, or ``>= threshold``; with
    neither, the column must hold 0/1 (or true/false). Giving ``negative`` too makes any value in
    neither list an error. ``regression`` labels are the column's numeric values. A missing value
    masks the row out of that task's loss and metrics.

    Example (YAML)::

        tasks:
          - {name: income, column: income, type: binary, positive: ["50000+."]}
          - {name: like, column: rating, type: binary, threshold: 4}
          - {name: rating, column: rating, type: regression, weight: 0.5}
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    column: str
    type: Literal["binary", "regression"]
    positive: list[Scalar] | None = None
    negative: list[Scalar] | None = None
    threshold: float | None = None
    weight: float = Field(default=1.0, ge=0.0)  # multiplies this task's loss

    @model_validator(mode="after")
    def _check(self) -> TaskSpec:
        if self.type == "regression" and (self.positive, self.negative, self.threshold) != (
            None,
            None,
            None,
        ):
            raise ValueError(f"task {self.name!r}: positive/negative/threshold need type: binary")
        if self.positive is not None and self.threshold is not None:
            raise ValueError(f"task {self.name!r}: give either positive or threshold, not both")
        if self.negative is not None and self.positive is None:
            raise ValueError(f"task {self.name!r}: negative needs positive too")
        return self

    def labels(self, values: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """Labels ``float32[N]`` (0 where missing) and mask ``bool[N]`` (false where missing)."""
        if self.type == "regression" or self.threshold is not None:
            x = to_float(values, f"task {self.name!r}: label column {self.column!r}")
            mask = np.isfinite(x)
            y = x if self.type == "regression" else (x >= self.threshold).astype(np.float64)
            return np.where(mask, y, 0.0).astype(np.float32), mask
        text = canonical_strings(values)
        mask = pc.is_valid(text).to_numpy(zero_copy_only=False)
        positive = [canonical_token(v) for v in self.positive or [1, True]]
        known = positive + ([canonical_token(v) for v in self.negative] if self.negative else [])
        if self.positive is None:
            known += [canonical_token(v) for v in (0, False)]
        if self.negative is not None or self.positive is None:
            unexpected = pc.unique(pc.filter(text, pc.invert(pc.is_in(text, pa.array(known)))))
            unexpected = [v for v in unexpected.to_pylist() if v is not None]
            if unexpected:
                hint = "list them in positive/negative" if self.positive else "set positive:"
                raise DataError(
                    f"task {self.name!r}: label column {self.column!r} has unexpected values "
                    f"{_preview(unexpected)}; {hint} (or threshold:) in the task spec"
                )
        y = pc.is_in(text, pa.array(positive)).to_numpy(zero_copy_only=False)
        return np.where(mask, y, False).astype(np.float32), mask


class Preprocessor:
    """Fits vocabularies and numeric statistics on training data and encodes tables into batches.

    Args:
        features: the feature columns and their options.
        tasks: the prediction targets, in model output order.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"city": ["a", "b", "a", None], "age": [20.0, 40.0, None, 30.0],
        ...                    "clicked": [1, 0, 1, 0]})
        >>> pre = Preprocessor(FeaturesConfig(categorical=["city"], numeric=["age"]),
        ...                    [TaskSpec(name="click", column="clicked", type="binary")]).fit(df)
        >>> pre.vocabularies_["city"]
        ['a', 'b']
        >>> pre.transform(df).categorical[:, 0].tolist()
        [1, 2, 1, 0]
    """

    def __init__(self, features: FeaturesConfig, tasks: Sequence[TaskSpec]) -> None:
        self.features = features
        self.tasks = list(tasks)

    # ---- fitting -------------------------------------------------------------------------------

    def fit(self, table: pa.Table | Any) -> Preprocessor:
        """Learn vocabularies and numeric statistics from ``table`` (pyarrow or pandas)."""
        table = as_arrow(table)
        self.vocabularies_: dict[str, list[str]] = {}
        for feat in self.features.categorical:
            text = canonical_strings(column(table, feat.name, "categorical feature"))
            counts = pc.value_counts(pc.drop_null(text)).to_pylist()
            keep = [c for c in counts if c["counts"] >= self.features.min_frequency_of(feat)]
            keep.sort(key=lambda c: (-c["counts"], c["values"]))
            self.vocabularies_[feat.name] = [c["values"] for c in keep]
        self.numeric_stats_: dict[str, dict[str, float]] = {}
        for feat in self.features.numeric:
            x = self._numeric(table, feat)
            known = np.isfinite(x)
            mean = float(x[known].mean()) if known.any() else 0.0
            # Impute, then scale: the statistics of SimpleImputer(mean) → StandardScaler.
            std = float(np.where(known, x, mean).std())
            self.numeric_stats_[feat.name] = {"mean": mean, "std": std if std > 0 else 1.0}
        for task in self.tasks:
            y, mask = task.labels(column(table, task.column, f"label of task {task.name!r}"))
            _check_labels(task, y[mask])
        return self

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "vocabularies_")

    # ---- transforming --------------------------------------------------------------------------

    def transform(self, table: pa.Table | Any, labels: bool | None = None) -> Batch:
        """Encode ``table`` into a ``Batch``.

        Args:
            table: a pyarrow Table or pandas DataFrame with every feature column.
            labels: ``True`` requires the label columns, ``False`` ignores them, ``None`` reads
                them when all are present.
        """
        if not self.is_fitted:
            raise RuntimeError("Preprocessor.transform called before fit")
        table = as_arrow(table)
        n = table.num_rows
        cat = np.zeros((n, len(self.features.categorical)), dtype=np.int32)
        for j, feat in enumerate(self.features.categorical):
            text = canonical_strings(column(table, feat.name, "categorical feature"))
            vocab = pa.array(self.vocabularies_[feat.name], type=pa.string())
            codes = pc.index_in(text, value_set=vocab)  # null where unknown or missing
            cat[:, j] = pc.fill_null(codes, -1).to_numpy(zero_copy_only=False) + 1
        num = np.zeros((n, len(self.features.numeric)), dtype=np.float32)
        for j, feat in enumerate(self.features.numeric):
            stats = self.numeric_stats_[feat.name]
            x = self._numeric(table, feat)
            x = np.where(np.isfinite(x), x, stats["mean"])
            num[:, j] = (x - stats["mean"]) / stats["std"]
        if labels is None:
            labels = all(t.column in table.column_names for t in self.tasks)
        if not labels:
            return Batch(torch.from_numpy(cat), torch.from_numpy(num))
        y = np.zeros((n, len(self.tasks)), dtype=np.float32)
        mask = np.zeros((n, len(self.tasks)), dtype=bool)
        for k, task in enumerate(self.tasks):
            y[:, k], mask[:, k] = task.labels(
                column(table, task.column, f"label of task {task.name!r}")
            )
        return Batch(
            torch.from_numpy(cat),
            torch.from_numpy(num),
            torch.from_numpy(y),
            torch.from_numpy(mask),
        )

    def input_spec(self) -> InputSpec:
        """The plain description of the encoded inputs that a model is built from."""
        if not self.is_fitted:
            raise RuntimeError("Preprocessor.input_spec called before fit")
        feats = self.features.categorical
        return InputSpec(
            cardinalities=tuple(len(self.vocabularies_[f.name]) + 1 for f in feats),
            embedding_dims=tuple(self.features.embedding_dim_of(f) for f in feats),
            num_numeric=len(self.features.numeric),
        )

    def _numeric(self, table: pa.Table, feat: NumericFeature) -> np.ndarray:
        x = to_float(column(table, feat.name, "numeric feature"), f"numeric feature {feat.name!r}")
        if feat.transform == "log1p":
            x = np.sign(x) * np.log1p(np.abs(x))
        return x

    # ---- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        if not self.is_fitted:
            raise RuntimeError("an unfitted Preprocessor has nothing to save")
        return {
            "format_version": PREPROCESSOR_FORMAT_VERSION,
            "features": self.features.model_dump(mode="json"),
            "tasks": [t.model_dump(mode="json") for t in self.tasks],
            "vocabularies": self.vocabularies_,
            "numeric_stats": self.numeric_stats_,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Preprocessor:
        version = state.get("format_version")
        if version != PREPROCESSOR_FORMAT_VERSION:
            raise ArtifactError(
                f"preprocessor format version {version!r} is not supported "
                f"(this mmoe reads version {PREPROCESSOR_FORMAT_VERSION}); retrain the model"
            )
        pre = cls(
            FeaturesConfig.model_validate(state["features"]),
            [TaskSpec.model_validate(t) for t in state["tasks"]],
        )
        pre.vocabularies_ = {k: list(v) for k, v in state["vocabularies"].items()}
        pre.numeric_stats_ = {k: dict(v) for k, v in state["numeric_stats"].items()}
        missing = [f.name for f in pre.features.categorical if f.name not in pre.vocabularies_]
        missing += [f.name for f in pre.features.numeric if f.name not in pre.numeric_stats_]
        if missing:
            raise ArtifactError(f"preprocessor state lacks features: {', '.join(missing)}")
        return pre

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> Preprocessor:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _check_labels(task: TaskSpec, y: np.ndarray) -> None:
    """A task whose training labels are all missing or all one class cannot be learned."""
    if y.size == 0:
        raise DataError(f"task {task.name!r}: column {task.column!r} has no non-missing label")
    if task.type == "binary" and (y.min() == y.max()):
        what = "positive" if y[0] == 1 else "negative"
        fix = "check positive:/threshold: in the task spec" if what == "negative" else ""
        raise DataError(
            f"task {task.name!r}: every training label is {what}"
            + (f"; {fix}" if fix else "; the task needs both classes")
        )


def _preview(values: list[Any], limit: int = 3) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")
