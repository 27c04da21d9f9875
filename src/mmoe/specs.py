"""Plain specifications: features, tasks and model inputs. No torch, no pyarrow.

These are the typed, serialisable descriptions every layer shares: the run config embeds
``FeaturesConfig`` and ``TaskSpec``; a fitted preprocessor publishes an ``InputSpec`` and a model
is built from exactly that (the two share no mutable object).

Example:
    >>> FeaturesConfig(categorical=["city"], numeric=["age"]).column_names
    ['city', 'age']
    >>> InputSpec(cardinalities=(5, 3), embedding_dims=(4, 4), num_numeric=2).output_dim
    10
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Scalar = str | bool | int | float


class CategoricalFeature(BaseModel):
    """A categorical column, embedded through a learned table."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Column name in the table.")
    embedding_dim: int | None = Field(
        default=None, ge=1, description="Embedding width; null: features.embedding_dim."
    )
    min_frequency: int | None = Field(
        default=None,
        ge=1,
        description="Rarer training values map to unknown; null: features.min_frequency.",
    )


class NumericFeature(BaseModel):
    """A numeric column, standardised with training statistics."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Column name in the table.")
    transform: Literal["none", "log1p"] = Field(
        default="none",
        description="none | log1p: sign(x)·log(1+|x|) before standardising, for heavy tails.",
    )


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

    categorical: list[CategoricalFeature] = Field(
        default=[],
        description="Categorical columns: names, or {name, embedding_dim, min_frequency}.",
    )
    numeric: list[NumericFeature] = Field(
        default=[], description="Numeric columns: names, or {name, transform}."
    )
    embedding_dim: int = Field(
        default=4, ge=1, description="Default width of every categorical embedding."
    )
    min_frequency: int = Field(
        default=1,
        ge=1,
        description="Values seen in fewer training rows map to the unknown index 0.",
    )

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

    name: str = Field(min_length=1, description="The task's name (a prediction column).")
    column: str = Field(description="The label column in the table.")
    type: Literal["binary", "regression"] = Field(
        description="binary (AUC, log loss) | regression (RMSE, MSE)."
    )
    positive: list[Scalar] | None = Field(
        default=None,
        description='Values meaning 1 (binary); quote text such as "yes" in YAML.',
    )
    negative: list[Scalar] | None = Field(
        default=None,
        description="Values meaning 0; with it, a value in neither list is an error.",
    )
    threshold: float | None = Field(
        default=None, description="Label is 1 where the value >= threshold (binary)."
    )
    weight: float = Field(default=1.0, ge=0.0, description="Multiplies this task's loss.")

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


@dataclass(frozen=True)
class InputSpec:
    """What a fitted preprocessor tells a model about its inputs (plain data, no shared objects).

    Args:
        cardinalities: vocabulary size of each categorical feature, index 0 (unknown) included.
        embedding_dims: embedding width of each categorical feature.
        num_numeric: number of numeric feature columns.
    """

    cardinalities: tuple[int, ...]
    embedding_dims: tuple[int, ...]
    num_numeric: int

    def __post_init__(self) -> None:
        assert len(self.cardinalities) == len(self.embedding_dims)

    @property
    def output_dim(self) -> int:
        """Width ``D`` of the vector ``FeatureEmbedding`` produces."""
        return sum(self.embedding_dims) + self.num_numeric


__all__ = [
    "CategoricalFeature",
    "FeaturesConfig",
    "InputSpec",
    "NumericFeature",
    "Scalar",
    "TaskSpec",
]
