"""The ``Preprocessor``: fitted on training data, it turns a table into a ``Batch``.

The preprocessor follows scikit-learn's contract: ``__init__`` stores the specs, ``fit`` learns
vocabularies and statistics into trailing-underscore attributes and returns ``self``, ``transform``
refuses to run unfitted. Its state is plain JSON (``to_dict`` / ``from_dict``), reloaded exactly.

Conventions (DESIGN.md §4): vocabulary index 0 is reserved for unknown, missing and rare values
(fewer than ``min_frequency`` training rows); known tokens follow by descending training frequency,
ties broken by the token's text. Numeric columns: optional ``log1p``, missing → training mean,
then standardised with the training mean and (population) standard deviation; a column may also
be encoded as bins, exact values or piecewise-linear parts (``mmoe.data.encodings``): those add
embedded columns after the categorical features and numeric columns per feature.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from mmoe.data import encodings
from mmoe.data.batch import Batch
from mmoe.data.labels import check_labels, task_labels
from mmoe.data.tables import as_arrow, canonical_strings, column, to_float
from mmoe.errors import ArtifactError
from mmoe.io import read_json, write_json
from mmoe.specs import FeaturesConfig, InputSpec, NumericFeature, TaskSpec

PREPROCESSOR_FORMAT_VERSION = 1


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
        targets = {}
        for task in self.tasks:
            y, mask = task_labels(task, column(table, task.column, f"label of task {task.name!r}"))
            check_labels(task, y[mask])
            targets[task.name] = np.where(mask, y, np.nan)
        self.numeric_encodings_: dict[str, encodings.NumericEncoding] = {}
        if not self.features.plain_numeric:
            raw = {f.name: self._numeric(table, f) for f in self.features.numeric}
            first = self.tasks[0].name if self.tasks else ""
            self.numeric_encodings_ = encodings.fit_encodings(self.features, raw, targets, first)
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
            # Absent when every numeric column is only standardised (files stay as before).
            **(
                {"numeric_encodings": {k: v.to_dict() for k, v in self.numeric_encodings_.items()}}
                if self.numeric_encodings_
                else {}
            ),
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
