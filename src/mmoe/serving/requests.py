"""Reading a ``POST /v1/predict`` body into an onnxruntime feed, or one ``RequestError`` naming
the field and the fix. No torch, no web framework: plain JSON values in, numpy arrays out.

Body forms (``gates`` is optional)::

    {"rows": [{"age": 39, "city": "paris"}, ...], "gates": true}
    {"columns": {"age": [39, 52], "city": ["paris", "lyon"]}}

Categorical values are strings, numbers or booleans (read as the training data's text: ``1`` and
``1.0`` → ``"1"``, ``true`` → ``"true"``) or ``null`` (missing → the unknown index). Numeric
values are numbers, numeric strings or ``null`` (missing → the training mean). Other keys of a
row (ids, labels) are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np

try:  # orjson (the serve extra) parses request bodies about 3x faster than json
    from orjson import JSONDecodeError as _DecodeError
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - the plain library reads the same JSON
    _DecodeError = json.JSONDecodeError  # type: ignore[assignment,misc]
    _loads = json.loads

from mmoe.onnx.metadata import ModelInfo

BODY_KEYS = ("rows", "columns", "gates")


class RequestError(Exception):
    """A bad request: HTTP ``status``, a short ``kind`` for metrics, the ``field`` and the fix."""

    def __init__(self, status: int, kind: str, field: str, message: str, fix: str) -> None:
        super().__init__(message)
        self.status, self.kind, self.field, self.message, self.fix = (
            status,
            kind,
            field,
            message,
            fix,
        )

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "kind": self.kind,
                "field": self.field,
                "message": self.message,
                "fix": self.fix,
            }
        }


@dataclass
class Limits:
    """Largest request accepted: rows per request and body bytes."""

    max_rows: int = 10_000
    max_body_bytes: int = 8 * 1024 * 1024


@dataclass
class ParsedRequest:
    feed: dict[str, np.ndarray]
    rows: int
    gates: bool


def parse_body(raw: bytes, info: ModelInfo, limits: Limits) -> ParsedRequest:
    """Validate a request body and build the model's feed (one array per feature column)."""
    if not raw.strip():
        raise RequestError(
            400,
            "empty_body",
            "body",
            "the request body is empty",
            'send JSON such as {"rows": [{"feature": value, ...}]}',
        )
    if len(raw) > limits.max_body_bytes:
        raise too_large(len(raw), limits)
    try:
        body = _loads(raw)
    except (_DecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(
            400, "bad_json", "body", f"the body is not valid JSON ({exc})", "send a JSON object"
        ) from None
    if not isinstance(body, dict):
        raise RequestError(
            422,
            "bad_shape",
            "body",
            f"the body is a JSON {_kind(body)}, not an object",
            'send {"rows": [...]} or {"columns": {...}}',
        )
    unknown = sorted(set(body) - set(BODY_KEYS))
    if unknown:
        raise RequestError(
            422,
            "unknown_field",
            unknown[0],
            f"unknown key {unknown[0]!r} in the body",
            f"use only {', '.join(BODY_KEYS)}",
        )
    gates = body.get("gates", False)
    if not isinstance(gates, bool):
        raise RequestError(
            422, "wrong_type", "gates", f"gates is a {_kind(gates)}", "send true or false"
        )
    if ("rows" in body) == ("columns" in body):
        raise RequestError(
            422,
            "bad_shape",
            "body",
            "the body needs exactly one of 'rows' and 'columns'",
            'send {"rows": [{...}, ...]} or {"columns": {"feature": [...], ...}}',
        )
    if "rows" in body:
        columns, n = _from_rows(body["rows"], info, limits)
    else:
        columns, n = _from_columns(body["columns"], info, limits)
    feed = {}
    for name in info.categorical:
        feed[name] = categorical_array(columns[name][0], columns[name][1], info)
    for name in info.numeric:
        feed[name] = numeric_array(columns[name][0], columns[name][1])
    return ParsedRequest(feed, n, gates)


def too_large(size: int, limits: Limits) -> RequestError:
    return RequestError(
        413,
        "too_large",
        "body",
        f"the body has {size} bytes or more; this server accepts {limits.max_body_bytes}",
        "split the rows into smaller requests",
    )


def _from_rows(
    rows: Any, info: ModelInfo, limits: Limits
) -> tuple[dict[str, tuple[Sequence[Any], str]], int]:
    if not isinstance(rows, list):
        raise RequestError(
            422, "wrong_type", "rows", f"rows is a {_kind(rows)}", "send a list of objects"
        )
    check_count(len(rows), "rows", limits)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RequestError(
                422,
                "wrong_type",
                f"rows[{i}]",
                f"rows[{i}] is a {_kind(row)}",
                "send each row as an object {feature: value}",
            )
    names = [*info.categorical, *info.numeric]
    if not names:
        return {}, len(rows)
    pick = itemgetter(*names)
    try:  # rows → columns in C: one itemgetter call per row, then zip
        picked = list(map(pick, rows))
    except KeyError:
        for name in names:  # the first feature, in model order, that some row lacks
            for i, row in enumerate(rows):
                if name not in row:
                    raise missing_feature(f"rows[{i}].{name}", name, row, info) from None
        raise
    if len(names) == 1:
        picked = [(v,) for v in picked]
    columns = zip(*picked, strict=True)
    return {n: (v, f"rows[].{n}") for n, v in zip(names, columns, strict=True)}, len(rows)


def _from_columns(
    columns: Any, info: ModelInfo, limits: Limits
) -> tuple[dict[str, tuple[Sequence[Any], str]], int]:
    if not isinstance(columns, dict):
        raise RequestError(
            422,
            "wrong_type",
            "columns",
            f"columns is a {_kind(columns)}",
            "send an object {feature: [values]}",
        )
    out, length, first = {}, None, None
    for name in [*info.categorical, *info.numeric]:
        if name not in columns:
            raise missing_feature(f"columns.{name}", name, columns, info)
        values = columns[name]
        if not isinstance(values, list):
            raise RequestError(
                422,
                "wrong_type",
                f"columns.{name}",
                f"columns.{name} is a {_kind(values)}",
                "send a list with one value per row",
            )
        if length is None:
            length, first = len(values), name
            check_count(length, f"columns.{name}", limits)
        elif len(values) != length:
            raise RequestError(
                422,
                "ragged_column",
                f"columns.{name}",
                f"columns.{name} has {len(values)} values but columns.{first} has {length}",
                "send the same number of values in every column",
            )
        out[name] = (values, f"columns.{name}")
    return out, length or 0


def check_count(n: int, field: str, limits: Limits) -> None:
    """Refuse 0 rows (422) and more rows than ``limits.max_rows`` (413)."""
    if n == 0:
        raise RequestError(422, "no_rows", field, f"{field} is empty", "send at least one row")
    if n > limits.max_rows:
        raise RequestError(
            413,
            "too_many_rows",
            field,
            f"{n} rows; this server accepts at most {limits.max_rows} per request",
            "split the rows into smaller requests",
        )


def missing_feature(
    field: str, name: str, given: dict[str, Any] | set[str], info: ModelInfo
) -> RequestError:
    """A 422 naming the first missing feature (and how many more are absent)."""
    needed = [*info.categorical, *info.numeric]
    absent = [n for n in needed if n not in given]
    more = f" (and {len(absent) - 1} more: {', '.join(absent[1:4])}...)" if len(absent) > 1 else ""
    return RequestError(
        422,
        "missing_feature",
        field,
        f"feature {name!r} is missing{more}",
        "send every feature listed by GET /v1/metadata; use null for a missing value",
    )


def categorical_array(values: Sequence[Any], field: str, info: ModelInfo) -> np.ndarray:
    """Strings ``(N,)`` for a categorical input, with the training data's spelling of values."""
    kinds = set(map(type, values))  # in C: several times faster than a generator over values
    if kinds == {str}:
        return np.array(values, dtype=object)
    if kinds <= {str, type(None)}:
        missing = info.missing_category
        return np.array([missing if v is None else v for v in values], dtype=object)
    out = []
    for i, v in enumerate(values):
        if type(v) is str:
            out.append(v)
        elif v is None:
            out.append(info.missing_category)
        elif isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, int):
            out.append(str(v))
        elif isinstance(v, float):
            out.append(str(int(v)) if v.is_integer() else repr(v))
        else:
            raise RequestError(
                422,
                "wrong_type",
                field.replace("[]", f"[{i}]"),
                f"a categorical value must be a string, number, boolean or null, got a {_kind(v)}",
                "send the category as a string",
            )
    return np.array(out, dtype=object)


def numeric_array(values: Sequence[Any], field: str) -> np.ndarray:
    """Doubles ``(N,)`` for a numeric input (``null`` → NaN)."""
    try:
        array = np.array(values, dtype=np.float64)
        if array.shape == (len(values),):
            return array
    except (TypeError, ValueError):
        pass
    for i, v in enumerate(values):
        try:
            if isinstance(v, list | dict):
                raise TypeError
            float(v) if v is not None else None
        except (TypeError, ValueError):
            raise RequestError(
                422,
                "wrong_type",
                field.replace("[]", f"[{i}]"),
                f"a numeric value must be a number or null, got {json.dumps(v)[:40]}",
                "send a number, or null for a missing value",
            ) from None
    raise AssertionError("unreachable: every value converts")  # pragma: no cover


def _kind(value: Any) -> str:
    return {
        dict: "object",
        list: "list",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


__all__ = [
    "Limits",
    "ParsedRequest",
    "RequestError",
    "categorical_array",
    "check_count",
    "missing_feature",
    "parse_body",
    "too_large",
]
