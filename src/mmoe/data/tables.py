"""Reading CSV/Parquet tables into pyarrow, and column helpers that fail with one clear line.

Everything downstream works on ``pyarrow.Table``; pandas DataFrames are accepted at the edges and
converted once. CSV parsing is pyarrow's multi-threaded reader, not row-wise Python.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mmoe.errors import DataError
from mmoe.io import atomic_path

TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet", ".pq")


def read_table(path: str | Path, na_values: list[str] | None = None) -> pa.Table:
    """Read a CSV (optionally gzipped), TSV or Parquet file with a header row.

    Args:
        path: the file; its suffix picks the format.
        na_values: CSV strings that mean "missing" in every column, string columns included.
            ``None`` keeps pyarrow's defaults, under which string columns keep every value
            (a category spelled ``NA`` stays a category) and numeric columns treat
            ``""``, ``NA``, ``NaN``, ``null`` and similar as missing.

    Raises:
        DataError: the file is missing, empty, truncated or not of its format.
    """
    path = Path(path)
    name = path.name.lower()
    try:
        found = path.is_file()
    except OSError as exc:  # e.g. a name too long: not a path a user meant
        raise DataError(f"not a readable file name: {str(path)[:60]!r}… ({exc.strerror})") from None
    if not found:
        raise DataError(f"data file not found: {path}")
    if not name.endswith(TABLE_SUFFIXES):
        raise DataError(f"{path}: unknown table format; use one of {', '.join(TABLE_SUFFIXES)}")
    try:
        if name.endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            table = _read_csv(path, na_values, delimiter="\t" if ".tsv" in name else ",")
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot be read: {_first_line(exc)}") from exc
    if table.num_rows == 0:
        raise DataError(f"{path}: the table has no rows")
    return table


def _read_csv(path: Path, na_values: list[str] | None, delimiter: str) -> pa.Table:
    from pyarrow import csv

    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    convert = csv.ConvertOptions()
    if na_values is not None:
        convert = csv.ConvertOptions(null_values=na_values, strings_can_be_null=True)
    return csv.read_csv(
        path, parse_options=csv.ParseOptions(delimiter=delimiter), convert_options=convert
    )


def write_table(table: pa.Table, path: str | Path) -> None:
    """Write ``table`` as CSV or Parquet (by suffix), atomically: no half-written file remains."""
    path = Path(path)
    name = path.name.lower()
    if not name.endswith((".csv", ".parquet", ".pq")):
        raise DataError(f"{path}: output must end in .csv or .parquet")
    with atomic_path(path) as tmp:
        if name.endswith(".csv"):
            from pyarrow import csv

            csv.write_csv(table, tmp)
        else:
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)


def as_arrow(data: Any) -> pa.Table:
    """A pyarrow Table from a Table or a pandas DataFrame (the index is dropped)."""
    if isinstance(data, pa.Table):
        return data
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        pd = None
    if pd is not None and isinstance(data, pd.DataFrame):
        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(f"cannot convert the DataFrame: {_first_line(exc)}") from exc
    raise DataError(f"expected a pandas DataFrame or pyarrow Table, got {type(data).__name__}")


def column(table: pa.Table, name: str, role: str) -> pa.ChunkedArray:
    """The column ``name``, or a ``DataError`` naming it, its role and the closest match."""
    if name in table.column_names:
        return table.column(name)
    close = difflib.get_close_matches(name, table.column_names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise DataError(f"{role} column {name!r} is not in the table{hint}")


def canonical_strings(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Values as text with one spelling per value: ``1``, ``1.0`` → ``"1"``; ``True`` → ``"true"``.

    Categories and binary labels are compared as text, so a column read as integers in one file
    and as strings in another encodes the same way.
    """
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return values
    if pa.types.is_dictionary(values.type):
        return values.cast(values.type.value_type).cast(pa.string())
    try:
        return values.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"cannot read values of type {values.type} as categories") from exc


def group_codes(table: pa.Table, name: str) -> np.ndarray:
    """``int64[N]`` codes of column ``name``'s values (equal values, equal codes; missing: -1).

    Rows are grouped by these codes for the grouped AUC (``metrics.group_by``).

    Example:
        >>> group_codes(pa.table({"user": ["u1", "u2", "u1", None]}), "user").tolist()
        [0, 1, 0, -1]
    """
    text = canonical_strings(column(table, name, "metrics.group_by"))
    encoded = pc.dictionary_encode(text).combine_chunks()
    return pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def canonical_token(value: str | bool | int | float) -> str:
    """The text :func:`canonical_strings` gives a Python scalar (used for ``positive:`` lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def to_float(values: pa.ChunkedArray, what: str) -> np.ndarray:
    """Values as ``float64`` with NaN where missing; a ``DataError`` if they are not numbers."""
    if pa.types.is_boolean(values.type):
        values = values.cast(pa.int8())
    try:
        floats = values.cast(pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad = _first_non_number(values)
        raise DataError(f"{what} must be numeric but holds {bad!r}") from None
    return floats.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _first_non_number(values: pa.ChunkedArray) -> Any:
    for v in pc.unique(values).to_pylist():
        try:
            float(v)
        except (TypeError, ValueError):
            if v is not None:
                return v
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
