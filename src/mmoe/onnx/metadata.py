"""What an exported file says about itself (ONNX metadata properties), and raw-column feeds.

Torch-free: the server (``mmoe.serving``) and users reading an exported file import this module
without loading torch.

Keys (values are strings; lists and records are JSON):

===========================  =========================================================
``mmoe.export_format``       version of this layout (``1``)
``mmoe.version``             mmoe version that exported the file
``mmoe.run_format_version``  run-directory format version the model was read from
``mmoe.architecture``        ``shared_bottom``, ``omoe``, ``mmoe``, ...
``mmoe.inputs``              ``raw`` (one input per column) or ``tensor`` (encoded inputs)
``mmoe.tasks``               ``[{"name", "type"}]`` in output order
``mmoe.features``            ``[{"name", "kind", ...}]``: ``kind`` ``categorical`` (with
                             ``vocabulary_size``) or ``numeric`` (with ``transform`` and,
                             when not plain standardisation, ``encoding``: ``{"kind",
                             "keep_raw", "values"}``)
``mmoe.target_stats``        ``{task: {"mean", "std"}}`` of standardised regression tasks;
                             their outputs are already ``z * std + mean`` (float64)
``mmoe.outputs``             what each output holds, in words
``mmoe.ensemble_size``       members of a seed ensemble (``1``: a single model)
``mmoe.missing_category``    the string to send for a missing categorical value
``mmoe.gate_rows``           ``[[level, name], ...]``: rows of the ``gates`` output; for a
                             seed ensemble ``[[member, name], ...]`` (members' gates stacked)
``mmoe.expert_names``        names along the last dimension of ``gates``
``mmoe.weights_sha256``      SHA-256 of the run's ``model.safetensors``
===========================  =========================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

EXPORT_FORMAT = 1
PREFIX = "mmoe."


@dataclass(frozen=True)
class ModelInfo:
    """The metadata of an exported model, parsed (once: the server reads the feature lists on
    every request, and the features' JSON holds the numeric encodings' kept values).

    Example:
        >>> info = ModelInfo.from_props({"mmoe.tasks": '[{"name": "click", "type": "binary"}]',
        ...     "mmoe.features": '[{"name": "age", "kind": "numeric", "transform": "none"}]'})
        >>> info.task_names, info.numeric
        (['click'], ['age'])
    """

    props: dict[str, str]

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelInfo:
        return cls(dict(props))

    def _json(self, key: str, default: Any) -> Any:
        raw = self.props.get(PREFIX + key)
        return default if raw is None else json.loads(raw)

    @cached_property
    def tasks(self) -> list[dict[str, str]]:
        return self._json("tasks", [])

    @cached_property
    def task_names(self) -> list[str]:
        return [t["name"] for t in self.tasks]

    @cached_property
    def features(self) -> list[dict[str, Any]]:
        return self._json("features", [])

    @cached_property
    def categorical(self) -> list[str]:
        return [f["name"] for f in self.features if f["kind"] == "categorical"]

    @cached_property
    def numeric(self) -> list[str]:
        return [f["name"] for f in self.features if f["kind"] == "numeric"]

    @property
    def raw_inputs(self) -> bool:
        return self.props.get(PREFIX + "inputs", "raw") == "raw"

    @property
    def missing_category(self) -> str:
        return self.props.get(PREFIX + "missing_category", "")

    @cached_property
    def gate_rows(self) -> list[list[Any]]:
        return self._json("gate_rows", [])

    @cached_property
    def expert_names(self) -> list[str]:
        return self._json("expert_names", [])

    def public(self) -> dict[str, Any]:
        """Everything as plain JSON values (lists and records decoded), keys without prefix."""
        out: dict[str, Any] = {}
        for key, value in sorted(self.props.items()):
            if not key.startswith(PREFIX):
                continue
            try:
                out[key[len(PREFIX) :]] = json.loads(value)
            except json.JSONDecodeError:
                out[key[len(PREFIX) :]] = value
        return out


def table_feed(table: Any, info: ModelInfo) -> dict[str, np.ndarray]:
    """The raw-input feed of an exported model from a pyarrow Table or pandas DataFrame.

    Categorical columns become canonical text (``1`` and ``1.0`` → ``"1"``, ``True`` →
    ``"true"``; missing → :attr:`ModelInfo.missing_category`), numeric columns float64 with NaN
    where missing: the same reading ``Preprocessor.transform`` applies.
    """
    import pyarrow.compute as pc

    from mmoe.data.tables import as_arrow, canonical_strings, column, to_float

    table = as_arrow(table)
    feed: dict[str, np.ndarray] = {}
    for name in info.categorical:
        text = canonical_strings(column(table, name, "categorical feature"))
        filled = pc.fill_null(text, info.missing_category)
        feed[name] = np.asarray(filled.to_pylist(), dtype=object)
    for name in info.numeric:
        feed[name] = to_float(column(table, name, "numeric feature"), f"numeric feature {name!r}")
    return feed


__all__ = ["EXPORT_FORMAT", "ModelInfo", "table_feed"]
