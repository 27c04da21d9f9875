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
    max_categories: int | None = Field(
        default=None,
        ge=1,
        description="Keep at most this many of the most frequent tokens; the rest map to the "
        "unknown index 0 (caps the embedding table of a huge id column). None: no cap.",
    )


NumericEncodingName = Literal[
    "standardize", "values", "quantile_bins", "tree_bins", "piecewise_linear"
]


class NumericFeature(BaseModel):
    """A numeric column, standardised with training statistics and optionally encoded further.

    ``encoding`` (see ``mmoe.data.encodings``): ``values``, ``quantile_bins`` and ``tree_bins``
    add one embedded column; ``piecewise_linear`` adds ``bins`` numeric columns; ``keep_raw``
    feeds the standardised value beside them. Unset options take the ``features.numeric_*``
    defaults.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Column name in the table.")
    transform: Literal["none", "log1p"] = Field(
        default="none",
        description="none | log1p: sign(x)·log(1+|x|) before standardising, for heavy tails.",
    )
    encoding: NumericEncodingName | None = Field(
        default=None,
        description="How the column is encoded: standardize | values | quantile_bins | "
        "tree_bins | piecewise_linear; unset: features.numeric_encoding.",
    )
    keep_raw: bool | None = Field(
        default=None,
        description="Also feed the standardised value beside a bin or piecewise-linear "
        "encoding; unset: features.numeric_keep_raw.",
    )
    bins: int | None = Field(
        default=None,
        ge=2,
        description="Bins of quantile_bins / piecewise_linear, most leaves of tree_bins; "
        "unset: features.numeric_bins.",
    )
    min_frequency: int | None = Field(
        default=None,
        ge=1,
        description="values: values seen in fewer training rows map to index 0; tree_bins: "
        "fewest rows per leaf; unset: features.numeric_min_frequency.",
    )
    tree_task: str | None = Field(
        default=None,
        description="Task whose label the tree_bins tree is fitted on; unset: the first task.",
    )
    embedding_dim: int | None = Field(
        default=None,
        ge=1,
        description="Embedding width of the encoded column (values and bins); unset: "
        "features.embedding_dim.",
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
    numeric_encoding: NumericEncodingName = Field(
        default="standardize",
        description="Default encoding of every numeric column (see mmoe.data.encodings).",
    )
    numeric_keep_raw: bool = Field(
        default=True,
        description="Default keep_raw: feed the standardised value beside an encoding.",
    )
    numeric_bins: int = Field(
        default=32, ge=2, description="Default bins of quantile_bins, tree_bins, piecewise_linear."
    )
    numeric_min_frequency: int = Field(
        default=20,
        ge=1,
        description="Default min_frequency of the values encoding (rarer values → index 0) "
        "and fewest rows per leaf of tree_bins.",
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

    def encoding_of(self, feature: NumericFeature) -> str:
        return feature.encoding or self.numeric_encoding

    @property
    def plain_numeric(self) -> bool:
        """Whether every numeric column is only standardised (the encoding-free layout)."""
        return all(self.encoding_of(f) == "standardize" for f in self.numeric)


class TaskSpec(BaseModel):
    """One prediction target, read from one column of the table.

    ``binary`` labels are 1 where the column value is in ``positive``, or ``>= threshold``; with
    neither, the column must hold 0/1 (or true/false). Giving ``negative`` too makes any value in
    neither list an error. ``regression`` labels are the column's numeric values, standardised
    with training statistics unless ``standardize: false``. A missing value (null, NaN, an empty
    cell) masks the row out of that task's loss and metrics. ``loss`` and its options
    (``gamma``, ``pos_weight``, ``delta``) are described in ``mmoe.training.losses``.

    Example (YAML)::

        tasks:
          - {name: income, column: income, type: binary, positive: ["50000+."]}
          - {name: like, column: rating, type: binary, threshold: 4}
          - {name: rating, column: rating, type: regression, weight: 0.5}
          - {name: buy, column: bought, type: binary, loss: focal, gamma: 2, pos_weight: 10}
          - {name: watch, column: seconds, type: regression, loss: huber, delta: 1.5}
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
    # Per-task loss options (mixed binary + regression tasks).
    loss: Literal["bce", "focal", "mse", "huber"] | None = Field(
        default=None,
        description="the task's loss: bce or focal (binary), mse or huber (regression); "
        "null: bce for binary tasks, mse for regression tasks",
    )
    gamma: float | None = Field(
        default=None,
        ge=0.0,
        description="focal loss focusing parameter: (1 - p_t)^gamma scales the cross-entropy; "
        "0 gives bce; null: 2 (Lin et al., ICCV 2017); needs loss: focal",
    )
    pos_weight: float | None = Field(
        default=None,
        gt=0.0,
        description="weight of the positive class in bce/focal (e.g. negatives / positives "
        "for rare positives); null: 1; binary tasks only",
    )
    delta: float | None = Field(
        default=None,
        gt=0.0,
        description="huber loss threshold, in the units the loss sees (standard deviations of "
        "the target when it is standardised); null: 1; needs loss: huber",
    )
    standardize: bool | None = Field(
        default=None,
        description="standardise a regression target with training mean and std for the loss "
        "(predictions and metrics stay in the original unit); null: true; regression only",
    )

    @model_validator(mode="after")
    def _check(self) -> TaskSpec:
        self._check_loss_options()
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

    def _check_loss_options(self) -> None:
        """Loss options must fit the task type and the chosen loss."""
        allowed = ("bce", "focal") if self.type == "binary" else ("mse", "huber")
        if self.loss is not None and self.loss not in allowed:
            raise ValueError(
                f"task {self.name!r}: loss {self.loss!r} does not apply to a {self.type} task; "
                f"use {' or '.join(allowed)}"
            )
        if self.gamma is not None and self.loss != "focal":
            raise ValueError(f"task {self.name!r}: gamma needs loss: focal")
        if self.delta is not None and self.loss != "huber":
            raise ValueError(f"task {self.name!r}: delta needs loss: huber")
        if self.pos_weight is not None and self.type != "binary":
            raise ValueError(f"task {self.name!r}: pos_weight applies to binary tasks only")
        if self.standardize is not None and self.type != "regression":
            raise ValueError(f"task {self.name!r}: standardize applies to regression tasks only")

    @property
    def loss_name(self) -> str:
        """The loss this task trains with (``loss``, or the default of its type)."""
        return self.loss or ("bce" if self.type == "binary" else "mse")

    @property
    def standardized(self) -> bool:
        """Whether the target is standardised with training statistics (regression default)."""
        return self.type == "regression" and self.standardize is not False


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
    "NumericEncodingName",
    "NumericFeature",
    "Scalar",
    "TaskSpec",
]
