"""Which split (train, valid, test) each row belongs to: random, by a hashed key, or by time.

The same rule serves whole tables and streams, so a row lands in the same split either way:

- ``hash``: a 64-bit FNV-1a hash of the key's canonical text (``123`` and ``"123"`` agree),
  mixed with ``split_seed``, mapped to ``[0, 1)``: below ``valid_fraction`` → valid, the next
  ``test_fraction`` → test, the rest → train. Every row of one key lands in one split.
- ``time``: ``split_column < valid_from`` → train, ``valid_from <= t < test_from`` → valid,
  ``t >= test_from`` → test; rows without a time are left out.
- ``random`` (streams only; a table's random split is :func:`holdout`): the same mapping, with
  a hash of the row's file and position in it instead of a key.

Example:
    >>> import pyarrow as pa
    >>> t = pa.table({"user": [1, 2, 3, 1], "day": [1, 5, 9, 9]})
    >>> by_time = RowSplitter("time", "day", valid_from=5, test_from=9)
    >>> by_time.assign(t).tolist()
    [0, 1, 2, 2]
    >>> by_hash = RowSplitter("hash", "user", valid_fraction=0.5)
    >>> parts = by_hash.assign(t).tolist()
    >>> parts[0] == parts[3]   # one user, one split
    True
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mmoe.data.tables import canonical_strings, column
from mmoe.errors import DataError

TRAIN, VALID, TEST, DROPPED = 0, 1, 2, -1
PART_IDS = {"train": TRAIN, "valid": VALID, "test": TEST}

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


class RowSplitter:
    """Assigns rows to splits by one of the rules above (see the ``data:`` split keys)."""

    def __init__(
        self,
        kind: str,
        column: str | None = None,
        *,
        valid_fraction: float = 0.1,
        test_fraction: float = 0.0,
        valid_from: int | float | str | None = None,
        test_from: int | float | str | None = None,
        seed: int = 0,
    ) -> None:
        self.kind, self.column = kind, column
        self.valid_fraction, self.test_fraction = valid_fraction, test_fraction
        self.valid_from, self.test_from = valid_from, test_from
        self.seed = seed

    @property
    def columns(self) -> list[str]:
        """The columns :meth:`assign` reads."""
        return [self.column] if self.column is not None and self.kind != "random" else []

    def assign(self, table: pa.Table, file_key: int = 0, first_row: int = 0) -> np.ndarray:
        """``int8[N]`` split of each row: 0 train, 1 valid, 2 test, -1 left out.

        ``file_key`` and ``first_row`` place the rows in their file (random splits of streams).
        """
        if self.kind == "time":
            return self._by_time(column(table, self.column, "split"))
        if self.kind == "hash":
            u = _unit_interval(key_hash(column(table, self.column, "split"), self.seed))
        else:
            positions = np.arange(first_row, first_row + table.num_rows, dtype=np.uint64)
            u = _unit_interval(_mix(positions ^ _mix(np.uint64(file_key) + np.uint64(self.seed))))
        parts = np.full(len(u), TRAIN, dtype=np.int8)
        parts[u < self.valid_fraction + self.test_fraction] = TEST
        parts[u < self.valid_fraction] = VALID
        return parts

    def _by_time(self, t: pa.ChunkedArray) -> np.ndarray:
        valid_from = _cutoff(self.valid_from, t.type, "valid_from")
        parts = np.where(_true(pc.less(t, valid_from)), TRAIN, VALID).astype(np.int8)
        if self.test_from is not None:
            test_from = _cutoff(self.test_from, t.type, "test_from")
            parts[_true(pc.greater_equal(t, test_from))] = TEST
        parts[~pc.is_valid(t).to_numpy(zero_copy_only=False)] = DROPPED
        return parts


def key_hash(values: pa.ChunkedArray | pa.Array, seed: int = 0) -> np.ndarray:
    """``uint64[N]`` FNV-1a hash of each value's canonical text, mixed with ``seed``.

    Vectorised over the rows: one NumPy pass per byte position of the longest value.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], pa.string())
    if pa.types.is_dictionary(values.type):
        return key_hash(values.dictionary, seed)[
            pc.fill_null(values.indices, 0).to_numpy(zero_copy_only=False)
        ]
    text = pc.fill_null(canonical_strings(values), "")
    text = text.cast(pa.large_string())  # int64 offsets
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64)[
        text.offset : text.offset + len(text) + 1
    ]
    data = np.frombuffer(text.buffers()[2] or b"", dtype=np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    h = np.full(len(text), _FNV_OFFSET, dtype=np.uint64)
    for i in range(int(lengths.max()) if len(lengths) else 0):
        live = lengths > i
        byte = data[starts[live] + i].astype(np.uint64)
        h[live] = (h[live] ^ byte) * _FNV_PRIME
    return _mix(h ^ _mix(np.full(len(h), seed, dtype=np.uint64)))


def _mix(x: np.ndarray | np.uint64) -> np.ndarray:
    """SplitMix64's finaliser: spreads every input bit over the output."""
    with np.errstate(over="ignore"):
        x = np.asarray(x, dtype=np.uint64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _unit_interval(h: np.ndarray) -> np.ndarray:
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _cutoff(value: int | float | str | None, type_: pa.DataType, key: str) -> pa.Scalar:
    try:
        return pa.scalar(value).cast(type_)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise DataError(
            f"data.{key} {value!r} cannot be compared with the split column of type {type_}; "
            "give a value of that type"
        ) from exc


def _true(mask: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return pc.fill_null(mask, False).to_numpy(zero_copy_only=False).astype(bool)


def split_table(table: pa.Table, splitter: RowSplitter) -> dict[str, pa.Table]:
    """The rows of ``table`` in each split (row order kept)."""
    parts = splitter.assign(table)
    return {name: table.filter(pa.array(parts == i)) for name, i in PART_IDS.items()}


def holdout(
    table: pa.Table, fraction: float, seed: int, test_fraction: float = 0.0
) -> tuple[pa.Table, pa.Table, pa.Table | None]:
    """Split ``table`` at random into train, valid (``fraction``) and, when ``test_fraction``,
    test parts, with a fixed seed (row order kept in each)."""
    n = table.num_rows
    n_valid, n_test = round(n * fraction), round(n * test_fraction)
    if n_valid < 1 or n_valid + n_test >= n or (test_fraction > 0 and n_test < 1):
        raise DataError(f"cannot hold out {fraction + test_fraction:.0%} of {n} rows; add rows")
    order = np.random.default_rng(seed).permutation(n)
    valid = table.take(np.sort(order[:n_valid]))
    test = table.take(np.sort(order[n_valid : n_valid + n_test])) if n_test else None
    return table.take(np.sort(order[n_valid + n_test :])), valid, test
