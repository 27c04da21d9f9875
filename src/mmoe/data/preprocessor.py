"""The ``Preprocessor``: fitted on training data, it turns a table into a ``Batch``.

The preprocessor follows scikit-learn's contract: ``__init__`` stores the specs, ``fit`` learns
vocabularies and statistics into trailing-underscore attributes and returns ``self``, ``transform``
refuses to run unfitted. Its state is plain JSON (``to_dict`` / ``from_dict``), reloaded exactly.

Fitting has one code path for a table and for a stream too large for memory: ``partial_fit``
accumulates mergeable statistics (:mod:`mmoe.data.fit_state`: category counts, exact numeric sums,
label ranges) one batch at a time, and the fitted state is derived from them when it is first
needed (``finalize``); ``fit(table)`` is ``partial_fit`` over the table's record batches. Any
batching of the same rows gives the same fitted state, bit for bit, and the same JSON.

Conventions (DESIGN.md §4): vocabulary index 0 is reserved for unknown, missing and rare values
(fewer than ``min_frequency`` training rows, or beyond ``max_categories``); known tokens follow by
descending training frequency, ties broken by the token's text. Numeric columns: optional
``log1p``, missing → training mean, then standardised with the training mean and (population)
standard deviation; a column may also be encoded as bins, exact values or piecewise-linear parts
(``mmoe.data.encodings``): those add embedded columns after the categorical features and numeric
columns per feature. Such encodings need whole training columns (quantiles, tree splits), so while
they are fitted the raw numeric values and labels of the training rows are kept in memory.
Regression labels are standardised too (``mmoe.data.targets``;
``target_stats_``), unless a task opts out. With a ``weight_column``, labelled batches carry
per-row weights.

``preprocessor.json`` (``format_version`` 1)::

    {"format_version": 1,
     "features": {...the features: section...}, "tasks": [{...task spec...}, ...],
     "vocabularies": {"feature": ["most frequent token", ...], ...},   # index = position + 1
     "numeric_stats": {"feature": {"mean": m, "std": s}, ...},         # (x - mean) / std
     "target_stats": {"task": {"mean": m, "std": s}, ...},             # standardised targets
     "numeric_encodings": {"feature": {...}, ...},                     # optional (encodings)
     "weight_column": "w"}                                             # optional; absent: none

Encoding reuses lookup tables built once per fitted state (:mod:`mmoe.data.lookup`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from mmoe.data import encodings
from mmoe.data.batch import Batch
from mmoe.data.checks import require_columns
from mmoe.data.fit_state import CategoryCounts, LabelSummary, NumericMoments
from mmoe.data.labels import check_labels, task_labels
from mmoe.data.lookup import VocabularyLookup
from mmoe.data.tables import as_arrow, column, to_float
from mmoe.data.targets import TargetStats, standardize_targets
from mmoe.errors import ArtifactError, DataError
from mmoe.io import read_json, write_json
from mmoe.specs import FeaturesConfig, InputSpec, NumericFeature, TaskSpec

PREPROCESSOR_FORMAT_VERSION = 1

#: Rows per record batch when ``fit`` walks a table.
FIT_BATCH_ROWS = 65_536


class Preprocessor:
    """Fits vocabularies and numeric statistics on training data and encodes tables into batches.

    Args:
        features: the feature columns and their options.
        tasks: the prediction targets, in model output order.
        weight_column: a column of non-negative per-row sample weights, or ``None``.

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

        Fitting batch by batch gives the same state:

        >>> table = pa.Table.from_pandas(df)
        >>> again = Preprocessor(pre.features, pre.tasks)
        >>> for batch in table.to_batches(max_chunksize=3):
        ...     _ = again.partial_fit(batch)
        >>> again.to_dict() == pre.to_dict()
        True
    """

    def __init__(
        self,
        features: FeaturesConfig,
        tasks: Sequence[TaskSpec],
        weight_column: str | None = None,
    ) -> None:
        self.features = features
        self.tasks = list(tasks)
        self.weight_column = weight_column

    # ---- fitting -------------------------------------------------------------------------------

    def fit(self, table: pa.Table | Any) -> Preprocessor:
        """Learn vocabularies and numeric statistics from ``table`` (pyarrow or pandas).

        The same as a fresh :meth:`partial_fit` over the table's record batches.
        """
        return self.fit_batches(as_arrow(table).to_batches(max_chunksize=FIT_BATCH_ROWS))

    def fit_batches(self, batches: Iterable[pa.RecordBatch | pa.Table]) -> Preprocessor:
        """Forget any earlier fit, then :meth:`partial_fit` every batch and :meth:`finalize`."""
        self.reset()
        for batch in batches:
            self.partial_fit(batch)
        return self.finalize()

    def reset(self) -> Preprocessor:
        """Forget every statistic and fitted attribute."""
        self._categories = {f.name: CategoryCounts() for f in self.features.categorical}
        self._moments = {f.name: NumericMoments() for f in self.features.numeric}
        self._labels = {t.name: LabelSummary() for t in self.tasks}
        self._targets = {t.name: NumericMoments() for t in self.tasks if t.standardized}
        self._weights = NumericMoments()
        # Encodings other than standardisation are fitted on whole columns, kept until finalize.
        plain = self.features.plain_numeric
        self._raw = None if plain else {f.name: [] for f in self.features.numeric}
        self._raw_labels = {} if plain else {t.name: [] for t in self.tasks}
        self._finalized = False
        for name in (
            "vocabularies_",
            "numeric_stats_",
            "target_stats_",
            "numeric_encodings_",
            "_lookups",
        ):
            self.__dict__.pop(name, None)
        return self

    def partial_fit(self, batch: pa.RecordBatch | pa.Table | Any) -> Preprocessor:
        """Add the rows of ``batch`` (a record batch, table or DataFrame) to the statistics.

        The fitted attributes are derived from the statistics at the next :meth:`finalize`
        (called by ``transform``, ``input_spec`` and ``to_dict`` when needed).
        """
        if not hasattr(self, "_categories"):
            self.reset()
        table = _as_table(batch)
        require_columns(
            table, [*self.features.column_names, *(t.column for t in self.tasks)], "required"
        )
        for feat in self.features.categorical:
            self._categories[feat.name].update(column(table, feat.name, "categorical feature"))
        for feat in self.features.numeric:
            x = self._numeric(table, feat)
            self._moments[feat.name].update(x)
            if self._raw is not None:
                self._raw[feat.name].append(x)
        for task in self.tasks:
            y, mask = task_labels(task, column(table, task.column, f"label of task {task.name!r}"))
            self._labels[task.name].update(y[mask])
            if task.name in self._targets:
                self._targets[task.name].update(y[mask].astype(np.float64))
            if self._raw is not None:
                self._raw_labels[task.name].append(np.where(mask, y, np.nan))
        if self.weight_column is not None:
            self._weights.update(self._sample_weights(table))
        self._finalized = False
        return self

    def merge(self, other: Preprocessor) -> Preprocessor:
        """Add the statistics of ``other`` (same specs; e.g. fitted on another shard)."""
        assert other.features == self.features and other.tasks == self.tasks
        if not hasattr(self, "_categories"):
            self.reset()
        for name, counts in other._categories.items():
            self._categories[name].merge(counts)
        for name, moments in other._moments.items():
            self._moments[name].merge(moments)
        for name, labels in other._labels.items():
            self._labels[name].merge(labels)
        for name, targets in other._targets.items():
            self._targets[name].merge(targets)
        if self._raw is not None and other._raw is not None:
            for name, parts in other._raw.items():
                self._raw[name].extend(parts)
            for name, parts in other._raw_labels.items():
                self._raw_labels[name].extend(parts)
        self._weights.merge(other._weights)
        self._finalized = False
        return self

    def finalize(self) -> Preprocessor:
        """Derive vocabularies and statistics from what ``partial_fit`` accumulated."""
        if not hasattr(self, "_categories"):
            raise RuntimeError("Preprocessor.finalize called before partial_fit")
        if self._finalized:
            return self
        for task in self.tasks:
            check_labels(task, self._labels[task.name].extremes())
        self.vocabularies_: dict[str, list[str]] = {
            feat.name: self._categories[feat.name].vocabulary(
                self.features.min_frequency_of(feat), feat.max_categories
            )
            for feat in self.features.categorical
        }
        self.numeric_stats_: dict[str, dict[str, float]] = {}
        for feat in self.features.numeric:
            mean, std = self._moments[feat.name].mean_std()
            self.numeric_stats_[feat.name] = {"mean": mean, "std": std}
        # Regression targets: trained in standard deviations, predicted in their own unit.
        self.target_stats_: TargetStats = {}
        for name, moments in self._targets.items():
            mean, std = moments.mean_std()
            self.target_stats_[name] = {"mean": mean, "std": std}
        self.numeric_encodings_: dict[str, encodings.NumericEncoding] = {}
        if self._raw is not None:
            raw = {k: np.concatenate(v) if v else np.zeros(0) for k, v in self._raw.items()}
            targets = {
                k: np.concatenate(v) if v else np.zeros(0) for k, v in self._raw_labels.items()
            }
            first = self.tasks[0].name if self.tasks else ""
            self.numeric_encodings_ = encodings.fit_encodings(self.features, raw, targets, first)
        self.__dict__.pop("_lookups", None)
        self._finalized = True
        return self

    @property
    def is_fitted(self) -> bool:
        # After partial_fit, finalize() derives the fitted state when it is first needed.
        return "vocabularies_" in self.__dict__ or hasattr(self, "_categories")

    def _ready(self, what: str) -> None:
        if not self.is_fitted:
            raise RuntimeError(f"Preprocessor.{what} called before fit")
        if hasattr(self, "_categories") and not self._finalized:
            self.finalize()

    # ---- transforming --------------------------------------------------------------------------

    def transform(self, table: pa.Table | Any, labels: bool | None = None) -> Batch:
        """Encode ``table`` into a ``Batch``.

        Args:
            table: a pyarrow Table or RecordBatch, or a pandas DataFrame, with every feature
                column.
            labels: ``True`` requires the label columns, ``False`` ignores them, ``None`` reads
                them when all are present. Labelled batches carry the weight column's values
                when the preprocessor has one and the table holds it.
        """
        self._ready("transform")
        table = _as_table(table)
        require_columns(table, self.features.column_names)
        if labels:
            require_columns(table, [t.column for t in self.tasks], "label")
        lookups = self.lookups()
        n = table.num_rows
        cat = np.zeros((n, len(self.features.categorical)), dtype=np.int32)
        for j, feat in enumerate(self.features.categorical):
            cat[:, j] = lookups[feat.name](column(table, feat.name, "categorical feature"))
        num = np.zeros((n, len(self.features.numeric)), dtype=np.float32)
        raw = {}  # values before imputation, for the encodings
        for j, feat in enumerate(self.features.numeric):
            stats = self.numeric_stats_[feat.name]
            x = raw[feat.name] = self._numeric(table, feat)
            x = np.where(np.isfinite(x), x, stats["mean"])
            num[:, j] = (x - stats["mean"]) / stats["std"]
        if self.numeric_encodings_:
            zs = {f.name: num[:, j] for j, f in enumerate(self.features.numeric)}
            means = {k: v["mean"] for k, v in self.numeric_stats_.items()}
            codes, num = encodings.encode_columns(
                self.features, self.numeric_encodings_, raw, zs, means
            )
            cat = np.hstack([cat, codes])
        if labels is None:
            labels = all(t.column in table.column_names for t in self.tasks)
        if not labels:
            return Batch(torch.from_numpy(cat), torch.from_numpy(num))
        y = np.zeros((n, len(self.tasks)), dtype=np.float32)
        mask = np.zeros((n, len(self.tasks)), dtype=bool)
        for k, task in enumerate(self.tasks):
            y[:, k], mask[:, k] = task_labels(
                task, column(table, task.column, f"label of task {task.name!r}")
            )
        standardize_targets(self.target_stats_, self.tasks, y, mask)
        weights = None
        if self.weight_column is not None and self.weight_column in table.column_names:
            weights = torch.from_numpy(self._sample_weights(table).astype(np.float32))
        return Batch(
            torch.from_numpy(cat),
            torch.from_numpy(num),
            torch.from_numpy(y),
            torch.from_numpy(mask),
            weights,
        )

    def lookups(self) -> dict[str, VocabularyLookup]:
        """The per-feature lookup tables, built on first use after fitting or loading."""
        self._ready("lookups")
        if "_lookups" not in self.__dict__:
            self._lookups = {
                name: VocabularyLookup(tokens) for name, tokens in self.vocabularies_.items()
            }
        return self._lookups

    def input_spec(self) -> InputSpec:
        """The plain description of the encoded inputs that a model is built from."""
        self._ready("input_spec")
        feats = self.features.categorical
        cards = [len(self.vocabularies_[f.name]) + 1 for f in feats]
        dims = [self.features.embedding_dim_of(f) for f in feats]
        width = len(self.features.numeric)
        if self.numeric_encodings_:
            more_cards, more_dims, width = encodings.encoded_inputs(
                self.features, self.numeric_encodings_
            )
            cards, dims = cards + more_cards, dims + more_dims
        return InputSpec(tuple(cards), tuple(dims), num_numeric=width)

    def _numeric(self, table: pa.Table, feat: NumericFeature) -> np.ndarray:
        x = to_float(column(table, feat.name, "numeric feature"), f"numeric feature {feat.name!r}")
        if feat.transform == "log1p":
            x = np.sign(x) * np.log1p(np.abs(x))
        return x

    def _sample_weights(self, table: pa.Table) -> np.ndarray:
        assert self.weight_column is not None
        w = to_float(column(table, self.weight_column, "weight"), "weight column")
        if not np.isfinite(w).all() or (w < 0).any():
            raise DataError(
                f"weight column {self.weight_column!r} must hold finite, non-negative numbers "
                "on every row; fill or drop the rows that do not"
            )
        return w

    # ---- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        if not self.is_fitted:
            raise RuntimeError("an unfitted Preprocessor has nothing to save")
        self._ready("to_dict")
        state = {
            "format_version": PREPROCESSOR_FORMAT_VERSION,
            "features": self.features.model_dump(mode="json"),
            "tasks": [t.model_dump(mode="json") for t in self.tasks],
            "vocabularies": self.vocabularies_,
            "numeric_stats": self.numeric_stats_,
            "target_stats": self.target_stats_,
            # Absent when every numeric column is only standardised (files stay as before).
            **(
                {"numeric_encodings": {k: v.to_dict() for k, v in self.numeric_encodings_.items()}}
                if self.numeric_encodings_
                else {}
            ),
        }
        if self.weight_column is not None:
            state["weight_column"] = self.weight_column
        return state

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
            state.get("weight_column"),
        )
        pre.vocabularies_ = {k: list(v) for k, v in state["vocabularies"].items()}
        pre.numeric_stats_ = {k: dict(v) for k, v in state["numeric_stats"].items()}
        # Absent in files written before targets were standardised: those trained on raw values.
        pre.target_stats_ = {k: dict(v) for k, v in state.get("target_stats", {}).items()}
        pre.numeric_encodings_ = {
            k: encodings.NumericEncoding.from_dict(v)
            for k, v in state.get("numeric_encodings", {}).items()
        }
        missing = [f.name for f in pre.features.categorical if f.name not in pre.vocabularies_]
        missing += [f.name for f in pre.features.numeric if f.name not in pre.numeric_stats_]
        if not pre.features.plain_numeric:
            missing += [
                f.name for f in pre.features.numeric if f.name not in pre.numeric_encodings_
            ]
        if missing:
            raise ArtifactError(f"preprocessor state lacks features: {', '.join(missing)}")
        return pre

    def save(self, path: str | Path) -> None:
        """Write the fitted state as JSON, atomically."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> Preprocessor:
        """Read a state written by :meth:`save`."""
        return cls.from_dict(read_json(path))


def _as_table(data: pa.Table | pa.RecordBatch | Any) -> pa.Table:
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    return as_arrow(data)
