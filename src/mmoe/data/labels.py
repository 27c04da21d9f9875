"""Task labels from table columns: binary by positive/negative lists or a threshold, regression.

Example:
    >>> import pyarrow as pa
    >>> task = TaskSpec(name="like", column="rating", type="binary", threshold=4)
    >>> y, mask = task_labels(task, pa.chunked_array([[5, 2, None]]))
    >>> y.tolist(), mask.tolist()
    ([1.0, 0.0, 0.0], [True, True, False])
    >>> buy = TaskSpec(name="buy", column="buy", type="binary", positive=["y"], negative=["n"])
    >>> task_labels(buy, pa.chunked_array([["y", "", "n"]]))[1].tolist()  # empty: missing
    [True, False, True]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mmoe.data.tables import canonical_strings, canonical_token, to_float
from mmoe.errors import DataError
from mmoe.specs import TaskSpec


def task_labels(task: TaskSpec, values: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``float32[N]`` of ``task`` (0 where missing) and mask ``bool[N]`` (false there).

    A label is missing where the cell is null, NaN, or empty text (an empty CSV cell of a text
    column): that row is masked out of the task's loss and metrics.
    """
    values = _blank_as_null(values)
    if task.type == "regression" or task.threshold is not None:
        x = to_float(values, f"task {task.name!r}: label column {task.column!r}")
        mask = np.isfinite(x)
        y = x if task.type == "regression" else (x >= task.threshold).astype(np.float64)
        return np.where(mask, y, 0.0).astype(np.float32), mask
    text = canonical_strings(values)
    mask = pc.is_valid(text).to_numpy(zero_copy_only=False)
    positive = [canonical_token(v) for v in task.positive or [1, True]]
    known = positive + ([canonical_token(v) for v in task.negative] if task.negative else [])
    if task.positive is None:
        known += [canonical_token(v) for v in (0, False)]
    if task.negative is not None or task.positive is None:
        unexpected = pc.unique(pc.filter(text, pc.invert(pc.is_in(text, pa.array(known)))))
        unexpected = [v for v in unexpected.to_pylist() if v is not None]
        if unexpected:
            hint = "list them in positive/negative" if task.positive else "set positive:"
            raise DataError(
                f"task {task.name!r}: label column {task.column!r} has unexpected values "
                f"{_preview(unexpected)}; {hint} (or threshold:) in the task spec"
                + _yaml_bool_hint(task)
            )
    y = pc.is_in(text, pa.array(positive)).to_numpy(zero_copy_only=False)
    return np.where(mask, y, False).astype(np.float32), mask


def check_labels(task: TaskSpec, y: np.ndarray) -> None:
    """A task whose training labels are all missing or all one class cannot be learned."""
    if y.size == 0:
        raise DataError(f"task {task.name!r}: column {task.column!r} has no non-missing label")
    if task.type == "binary" and (y.min() == y.max()):
        what = "positive" if y[0] == 1 else "negative"
        fix = "check positive:/threshold: in the task spec" if what == "negative" else ""
        raise DataError(
            f"task {task.name!r}: every training label is {what}"
            + (f"; {fix}" if fix else "; the task needs both classes")
            + _yaml_bool_hint(task)
        )


def _blank_as_null(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Text cells that are empty or only spaces become nulls (missing labels)."""
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return values
    blank = pc.equal(pc.utf8_trim_whitespace(values), "")
    return pc.if_else(blank, pa.scalar(None, values.type), values)


def _yaml_bool_hint(task: TaskSpec) -> str:
    """YAML reads unquoted yes/no/on/off as true/false: say so when a label list holds a bool."""
    values = [*(task.positive or []), *(task.negative or [])]
    if any(isinstance(v, bool) for v in values):
        return (
            " (YAML reads unquoted yes/no/on/off as true/false: quote text labels, "
            'e.g. positive: ["yes"])'
        )
    return ""


def _preview(values: list[Any], limit: int = 3) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")
