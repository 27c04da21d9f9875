"""Checks of a table against a run's columns, with hints a user can act on.

* :func:`require_columns`: every missing feature or label column named in one error, with a hint
  when the table looks headerless (its "column names" are data) or read with the wrong delimiter.
* :func:`warn_unseen_categories`: the share of each categorical column's values that training
  never saw (they are scored as unknown), with the top offenders and a spelling hint.

Example:
    >>> import pyarrow as pa
    >>> require_columns(pa.table({"a": [1]}), ["a", "b", "c"], "feature")
    Traceback (most recent call last):
    ...
    mmoe.errors.DataError: the table lacks 2 feature columns: 'b', 'c' (it has: 'a')
"""

from __future__ import annotations

import difflib
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mmoe.data.tables import canonical_strings
from mmoe.errors import DataError, MmoeWarning

if TYPE_CHECKING:
    from mmoe.config import RunConfig

#: A categorical column warns when more than this share of its non-missing values is unseen.
UNSEEN_WARN_SHARE = 0.01

_NUMBER = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$")


def require_columns(table: pa.Table, names: Sequence[str], role: str = "feature") -> None:
    """Raise one ``DataError`` naming every column of ``names`` that ``table`` lacks."""
    have = set(table.column_names)
    missing = [n for n in dict.fromkeys(names) if n not in have]
    if not missing:
        return
    shown = ", ".join(_with_close_match(n, table.column_names) for n in missing[:8])
    more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
    plural = "s" if len(missing) > 1 else ""
    message = f"the table lacks {len(missing)} {role} column{plural}: {shown}{more}"
    hint = layout_hint(table.column_names)
    if hint:
        message += f"; {hint}"
    else:
        cols = table.column_names
        listed = ", ".join(repr(c) for c in cols[:8]) + (" …" if len(cols) > 8 else "")
        message += f" (it has: {listed})"
    raise DataError(message)


def _with_close_match(name: str, columns: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, columns, n=1)
    return f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name)


def layout_hint(columns: Sequence[str]) -> str | None:
    """A hint when the header row looks like data or like a wrongly split line, else ``None``.

    Example:
        >>> "no header row" in layout_hint(["73", " Not in universe", "0"])
        True
        >>> "';'-separated" in layout_hint(["user_id;item_id;rating"])
        True
    """
    if len(columns) == 1:
        for sep, name in ((";", "';'"), ("|", "'|'"), ("\t", "tab"), (",", "','")):
            if sep in columns[0]:
                return (
                    f"it has one column named {columns[0]!r}: the file seems to be "
                    f"{name}-separated; write it with commas (or tabs, named .tsv)"
                )
    numeric = [c for c in columns if _NUMBER.match(c)]
    padded = [c for c in columns if c != c.strip() and c.strip()]
    if numeric or len(padded) > len(columns) // 2:
        example = (numeric or padded)[0]
        return (
            f"its first row looks like data (column names such as {example!r}): the file seems "
            "to have no header row; add one with the column names"
        )
    return None


def check_table_columns(
    path: str | Path, config: RunConfig, na_values: list[str] | None = None
) -> None:
    """Read ``path`` and require the config's feature and label columns (all named at once)."""
    from mmoe.data.tables import read_table

    table = read_table(path, na_values)
    require_columns(
        table,
        [*config.features.column_names, *(t.column for t in config.tasks)],
        f"feature/label ({path})",
    )


def unseen_categories(
    table: pa.Table,
    vocabularies: dict[str, list[str]],
    codes: Mapping[str, np.ndarray] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per categorical column: rows, unseen rows, and the most frequent unseen values.

    ``codes[name]`` (``int (N,)``), the column's vocabulary indices as the preprocessor encoded
    them (0: outside the vocabulary), answer the membership test without a second lookup;
    without them each call builds a set of the vocabulary.

    Example:
        >>> t = pa.table({"city": ["Paris", "paris", " Paris", None]})
        >>> unseen_categories(t, {"city": ["Paris"]})["city"]["unseen"]
        2
    """
    report: dict[str, dict[str, Any]] = {}
    for name, vocab in vocabularies.items():
        if name not in table.column_names:
            continue
        text = canonical_strings(table.column(name))
        # An empty string is read where a CSV writer left a missing value: it scores as
        # unknown exactly like a missing value, so it is not reported as unseen.
        if codes is not None and name in codes:
            outside = codes[name] == 0
            if len(text) <= 64:  # a few rows: plain Python beats a dozen Arrow calls per column
                values = text.to_pylist()
                seen = [v for v in values if v is not None]
                bad = [v for v, o in zip(values, outside, strict=True) if o and v]
                report[name] = {"rows": len(seen), "unseen": len(bad), "top": _top(bad)}
                continue
            unseen = pc.and_(pc.and_(pc.is_valid(text), pa.array(outside)), pc.not_equal(text, ""))
            unseen = pc.fill_null(unseen, False)
        else:
            known = pc.is_in(text, value_set=pa.array([*vocab, ""], type=pa.string()))
            unseen = pc.and_(pc.is_valid(text), pc.invert(known))
        count = int(pc.sum(unseen).as_py() or 0)
        valid = int(pc.sum(pc.is_valid(text)).as_py() or 0)
        top = []
        if count:
            counts = pc.value_counts(pc.filter(text, unseen)).to_pylist()
            counts.sort(key=lambda c: (-c["counts"], c["values"]))
            top = [(c["values"], c["counts"]) for c in counts[:3]]
        report[name] = {"rows": valid, "unseen": count, "top": top}
    return report


def _top(values: list[str]) -> list[tuple[str, int]]:
    """The three most frequent ``values`` with their counts (ties: alphabetical)."""
    counts: dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return sorted(counts.items(), key=lambda c: (-c[1], c[0]))[:3]


def warn_unseen_categories(
    table: pa.Table,
    vocabularies: dict[str, list[str]],
    codes: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Warn (``MmoeWarning``) for each column where more than 1% of the values are unseen."""
    for name, entry in unseen_categories(table, vocabularies, codes).items():
        rows, unseen = entry["rows"], entry["unseen"]
        if not rows or unseen / rows <= UNSEEN_WARN_SHARE:
            continue
        top = ", ".join(f"{v!r} ({n} rows)" for v, n in entry["top"])
        message = (
            f"column {name!r}: {unseen / rows:.0%} of values ({unseen} of {rows}) were not in "
            f"training and are scored as unknown; most frequent: {top}"
        )
        lookalike = _lookalike(entry["top"][0][0], vocabularies[name])
        if lookalike is not None:
            message += (
                f"; {entry['top'][0][0]!r} differs from training's {lookalike!r} only in "
                "case or spaces: clean the column the way the training data was"
            )
        warnings.warn(message, MmoeWarning, stacklevel=2)


def _lookalike(value: str, vocab: list[str]) -> str | None:
    key = value.strip().casefold()
    return next((v for v in vocab if v.strip().casefold() == key), None)


def warn_undefined_metrics(metrics: dict[str, dict[str, Any]]) -> None:
    """Warn for every task whose AUC is undefined because its labels hold one class only."""
    for task, row in metrics.items():
        auc = row.get("auc", 0.0) if isinstance(row, dict) else 0.0
        if auc is None or auc != auc:
            warnings.warn(
                f"task {task!r}: all {int(row.get('rows', 0))} labels are of one class, so its "
                "AUC is undefined (null in JSON); evaluate on rows with both classes",
                MmoeWarning,
                stacklevel=2,
            )


__all__ = [
    "UNSEEN_WARN_SHARE",
    "check_table_columns",
    "layout_hint",
    "require_columns",
    "unseen_categories",
    "warn_undefined_metrics",
    "warn_unseen_categories",
]
