"""``mmoe init TABLE --task COLUMN``: a starter run config written from a look at the table.

Columns are typed by inspection:

* text, true/false, and integer columns named like identifiers (``id``, ``user_id``, ``zip``)
  or holding at most :data:`MAX_CODES` distinct values → ``categorical``;
* other numbers → ``numeric`` (with ``transform: log1p`` when non-negative and heavy-tailed);
* left out, with a comment saying why: label columns, ``--drop`` columns, columns that are
  empty, constant, dates/times, or text distinct in every row (identifiers, free text).

A task is ``[NAME=]COLUMN`` with its type inferred (0/1 or two values → binary, more numbers →
regression), or ``NAME=COLUMN>=X`` (binary: 1 where the value is at least X),
``NAME=COLUMN:binary`` or ``NAME=COLUMN:regression``.

Example:
    >>> parse_task("like=rating>=4")
    ('like', 'rating', 'binary', 4.0)
    >>> parse_task("clicked")
    ('clicked', 'clicked', None, None)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import yaml

from mmoe.data.checks import require_columns
from mmoe.data.tables import canonical_strings, read_table
from mmoe.errors import ConfigError, DataError

#: Integer columns with at most this many distinct values are read as categories.
MAX_CODES = 20
_ID_NAME = re.compile(r"(^|[_\s-])(id|code|zip|zipcode|postcode)$|id$", re.IGNORECASE)
_TASK = re.compile(r"^(?:(?P<name>[^=>:]+)=)?(?P<column>.+?)(?:(?P<op>>=|:)(?P<arg>[^:>=]+))?$")


def parse_task(text: str) -> tuple[str, str, str | None, float | None]:
    """``(name, column, type or None, threshold or None)`` from a ``--task`` value."""
    match = _TASK.match(text.strip())
    if not match:
        raise ConfigError(f"--task {text!r}: expected COLUMN, NAME=COLUMN or NAME=COLUMN>=X")
    name, column, op, arg = match.group("name", "column", "op", "arg")
    name = (name or column).strip()
    if op == ">=":
        try:
            return name, column.strip(), "binary", float(arg)
        except ValueError:
            raise ConfigError(f"--task {text!r}: {arg!r} after >= is not a number") from None
    if op == ":":
        if arg not in ("binary", "regression"):
            raise ConfigError(f"--task {text!r}: the type after : is binary or regression")
        return name, column.strip(), arg, None
    return name, column.strip(), None, None


def task_entry(table: pa.Table, text: str) -> tuple[dict[str, Any], str]:
    """The ``tasks:`` entry for one ``--task`` value and a comment on how it was read."""
    name, column, kind, threshold = parse_task(text)
    values = table.column(column)
    if threshold is not None:
        return {"name": name, "column": column, "type": "binary", "threshold": threshold}, (
            f"1 where {column} >= {threshold:g}"
        )
    distinct = [v for v in pc.unique(canonical_strings(values)).to_pylist() if v is not None]
    numeric = pa.types.is_integer(values.type) or pa.types.is_floating(values.type)
    if kind == "regression" or (kind is None and numeric and len(distinct) > 2):
        if not numeric:
            raise DataError(f"--task {text!r}: column {column!r} is not numeric")
        return {"name": name, "column": column, "type": "regression"}, "the column's value"
    if set(distinct) <= {"0", "1", "true", "false"}:
        return {"name": name, "column": column, "type": "binary"}, "0/1 column"
    if kind is None and len(distinct) > 2:
        raise DataError(
            f"--task {text!r}: column {column!r} holds {len(distinct)} text values; say which "
            f"is positive: NAME={column}:binary, then edit positive: in the config"
        )
    counts = pc.value_counts(pc.drop_null(canonical_strings(values))).to_pylist()
    counts.sort(key=lambda c: (c["counts"], c["values"]))
    positive = counts[0]["values"]  # the rarer value: usually the event being predicted
    entry = {"name": name, "column": column, "type": "binary", "positive": [positive]}
    return entry, f"1 where {column} is {positive!r} (the rarer value; edit if not)"


def feature_kind(name: str, values: pa.ChunkedArray) -> tuple[str | None, str]:
    """``("categorical" | "numeric" | None, reason)`` for one column."""
    valid = values.length() - values.null_count
    if valid == 0:
        return None, "empty"
    kind = values.type
    if pa.types.is_temporal(kind):
        return None, "a date/time (derive numbers from it, e.g. hour or weekday)"
    distinct = pc.count_distinct(values).as_py()
    if distinct <= 1:
        return None, "constant"
    if pa.types.is_boolean(kind) or pa.types.is_dictionary(kind):
        return "categorical", "true/false or codes"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if distinct == valid and valid > 50:
            return None, "text distinct in every row (an identifier or free text)"
        return "categorical", "text"
    if pa.types.is_integer(kind):
        if _ID_NAME.search(name):
            return "categorical", "an identifier"
        if distinct <= MAX_CODES:
            return "categorical", f"{distinct} distinct integers"
        return "numeric", "numbers"
    if pa.types.is_floating(kind):
        return "numeric", "numbers"
    return None, f"of type {kind}"


def heavy_tailed(values: pa.ChunkedArray) -> bool:
    """Non-negative with a 99th percentile over 50 times the median (log1p then helps)."""
    x = values.to_numpy(zero_copy_only=False).astype(np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0 or x.min() < 0:
        return False
    p50, p99 = np.percentile(x, [50, 99])
    return bool(p99 > 50 * max(p50, 1e-12) and p99 > 1)


def starter_config(
    path: str | Path, tasks: list[str], drop: list[str], name: str | None = None
) -> str:
    """The starter config for the table at ``path`` as YAML text with comments."""
    path = Path(path)
    table = read_table(path)
    if not tasks:
        raise ConfigError("name at least one label column: --task COLUMN")
    require_columns(table, [parse_task(t)[1] for t in tasks] + list(drop), "--task/--drop")
    entries = [task_entry(table, t) for t in tasks]
    labels = {e["column"] for e, _ in entries}
    categorical: list[Any] = []
    numeric: list[Any] = []
    skipped: list[str] = []
    for column in table.column_names:
        if column in labels or column in drop:
            continue
        kind, reason = feature_kind(column, table.column(column))
        if kind == "categorical":
            categorical.append(column)
        elif kind == "numeric":
            numeric.append(
                {"name": column, "transform": "log1p"}
                if heavy_tailed(table.column(column))
                else column
            )
        else:
            skipped.append(f"{column} ({reason})")
    if not categorical and not numeric:
        raise DataError(f"{path}: no column is left to be a feature; check --task and --drop")
    config_name = name or re.sub(r"[^\w.-]+", "-", path.name.split(".")[0])
    lines = [
        f"# Starter config for {path.name} ({table.num_rows:,} rows), written by mmoe init.",
        "# Every key: mmoe config reference (or docs/config.md). Check: mmoe config validate FILE",
        f"name: {_flow(config_name)}",
        "data:",
        "  source: table",
        f"  train: {_flow(str(path))}",
        "  valid: null          # null: valid_fraction of train is held out at random",
        "  test: null           # null: test_fraction of train is held out (null too: no test)",
        "  valid_fraction: 0.1",
        "  test_fraction: 0.1",
        "  split_seed: 0",
        "features:",
        "  # text, true/false, identifiers and integers with few values: embedded",
        f"  categorical: {_flow(categorical)}",
        "  # other numbers: missing -> training mean, then standardised",
        f"  numeric: {_flow(numeric)}",
        "  embedding_dim: 4     # width of every categorical embedding",
        "  min_frequency: 1     # rarer training values share the unknown index",
    ]
    if skipped:
        lines.append(f"  # left out: {'; '.join(skipped)}")
    lines.append("tasks:")
    for entry, how in entries:
        lines.append(f"  - {_flow(entry)}   # {how}")
    lines += [
        "model:",
        "  name: mmoe           # shared_bottom | omoe | mmoe",
        "  num_experts: 8",
        "  expert_hidden: [16]",
        "  tower_hidden: [8]",
        "training:",
        "  epochs: 10",
        "  batch_size: 1024",
        "  learning_rate: 0.001",
        "  patience: 3          # stop after 3 evaluations without a better validation metric",
    ]
    return "\n".join(lines) + "\n"


def _flow(value: Any) -> str:
    return (
        yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False)
        .strip()
        .removesuffix("\n...")
        .strip()
    )


__all__ = ["MAX_CODES", "feature_kind", "parse_task", "starter_config", "task_entry"]
