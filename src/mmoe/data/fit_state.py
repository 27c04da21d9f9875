"""Mergeable statistics a preprocessor accumulates while it is fitted batch by batch.

Every statistic here merges exactly: two states fitted on two halves of a table, merged, equal
the state fitted on the whole table, whatever the batching. Category counts are summed; numeric
sums are kept as exact rationals (each float64 is ``m · 2^e``, summed without rounding), so the
mean and the standard deviation come out bit-identical however the rows were batched, and
without the cancellation of a textbook ``E[x²] − E[x]²``.

Example:
    >>> a, b = NumericMoments(), NumericMoments()
    >>> a.update(np.array([1.0, 2.0, np.nan])); b.update(np.array([3.0, 4.0]))
    >>> a.merge(b).mean_std()
    (2.5, 1.0)
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mmoe.data.tables import canonical_strings

#: Pending (value, count) rows after which category counts are compacted.
_COMPACT_ROWS = 1 << 20


class CategoryCounts:
    """How many times each token of one categorical column was seen.

    Integer columns are counted as integers (cheaper than text) and become text at
    :meth:`vocabulary`; any other type is counted as its canonical text.
    """

    def __init__(self) -> None:
        self._state: pa.Table | None = None  # columns v (int64 or string), c (int64); v unique
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def update(self, values: pa.Array | pa.ChunkedArray) -> None:
        tokens = _tokens(values)
        counted = pc.value_counts(pc.drop_null(tokens))
        if len(counted) == 0:
            return
        part = pa.table({"v": counted.field("values"), "c": counted.field("counts")})
        self._add(part.cast(pa.schema([("v", part.schema.field("v").type), ("c", pa.int64())])))

    def merge(self, other: CategoryCounts) -> CategoryCounts:
        other_state = other.table()
        if other_state.num_rows:
            self._add(other_state)
        return self

    def table(self) -> pa.Table:
        """The compacted counts: one row per token (columns ``v`` and ``c``)."""
        if self._pending:
            parts = ([self._state] if self._state is not None else []) + self._pending
            if len({p.schema.field("v").type for p in parts}) > 1:  # ints here, text there
                parts = [p.set_column(0, "v", canonical_strings(p.column("v"))) for p in parts]
            merged = pa.concat_tables(parts).group_by("v").aggregate([("c", "sum")])
            self._state = merged.rename_columns(["v", "c"])
            self._pending, self._pending_rows = [], 0
        if self._state is None:
            return pa.table({"v": pa.array([], pa.string()), "c": pa.array([], pa.int64())})
        return self._state

    def vocabulary(self, min_frequency: int, max_categories: int | None) -> list[str]:
        """Tokens seen at least ``min_frequency`` times, most frequent first (ties: by text),
        at most ``max_categories`` of them."""
        counts = self.table()
        counts = counts.filter(pc.greater_equal(counts.column("c"), min_frequency))
        text = canonical_strings(counts.column("v"))
        ranked = pa.table({"text": text, "c": counts.column("c")})
        order = pc.sort_indices(ranked, sort_keys=[("c", "descending"), ("text", "ascending")])
        if max_categories is not None:
            order = order[:max_categories]
        return ranked.column("text").take(order).to_pylist()

    def _add(self, part: pa.Table) -> None:
        self._pending.append(part)
        self._pending_rows += part.num_rows
        state_rows = 0 if self._state is None else self._state.num_rows
        if self._pending_rows > max(_COMPACT_ROWS, state_rows):
            self.table()


def _tokens(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Integers as int64, anything else as canonical text."""
    if pa.types.is_integer(values.type):
        return values.cast(pa.int64())
    return canonical_strings(values)


class NumericMoments:
    """Count, exact sum and exact sum of squares of one numeric column (NaN = missing)."""

    def __init__(self) -> None:
        self.rows = 0  # every row, missing ones included
        self.known = 0  # rows with a finite value
        self.sum = Fraction(0)
        self.sum_squares = Fraction(0)

    def update(self, x: np.ndarray) -> None:
        self.rows += len(x)
        x = x[np.isfinite(x)]
        self.known += len(x)
        self.sum += exact_sum(x)
        # x² = hi² + 2·hi·lo + lo², each product exact in float64 (Veltkamp split).
        c = 134_217_729.0 * x  # 2^27 + 1
        hi = c - (c - x)
        lo = x - hi
        self.sum_squares += exact_sum(hi * hi) + exact_sum(2.0 * hi * lo) + exact_sum(lo * lo)

    def merge(self, other: NumericMoments) -> NumericMoments:
        self.rows += other.rows
        self.known += other.known
        self.sum += other.sum
        self.sum_squares += other.sum_squares
        return self

    def mean_std(self) -> tuple[float, float]:
        """Mean of the known values; standard deviation after imputing the mean for the missing
        ones (the statistics of ``SimpleImputer(mean)`` then ``StandardScaler``); std 1 if 0."""
        if self.known == 0:
            return 0.0, 1.0
        mean = self.sum / self.known
        squared_deviations = self.sum_squares - self.sum * mean  # Σ(x - mean)² over known values
        std = float(np.sqrt(float(squared_deviations / self.rows)))
        return float(mean), std if std > 0 else 1.0


def exact_sum(x: np.ndarray) -> Fraction:
    """The exact sum of finite float64 values, as a ``Fraction`` (no rounding anywhere).

    Each value is ``m · 2^e`` with an integer ``|m| < 2^53``; ``m`` is split into 27- and 26-bit
    halves whose per-exponent sums stay below 2^53, so NumPy adds them exactly.
    """
    total = Fraction(0)
    for start in range(0, max(len(x), 1), 1 << 24):  # keeps every per-exponent sum below 2^53
        part = x[start : start + (1 << 24)]
        if not len(part):
            continue
        mantissa, exponent = np.frexp(part)
        m = (mantissa * 2.0**53).astype(np.int64)
        e = exponent.astype(np.int64) - 53
        base = int(e.min())
        index = e - base
        high = np.bincount(index, weights=(m >> 26).astype(np.float64))
        low = np.bincount(index, weights=(m & ((1 << 26) - 1)).astype(np.float64))
        scaled = 0
        for shift in np.flatnonzero((high != 0) | (low != 0)):
            scaled += ((int(high[shift]) << 26) + int(low[shift])) << int(shift)
        total += Fraction(scaled) * Fraction(2) ** base
    return total


class LabelSummary:
    """Per task: labelled rows, smallest and largest label (enough to refuse a one-class task)."""

    def __init__(self) -> None:
        self.count = 0
        self.low = np.inf
        self.high = -np.inf

    def update(self, y: np.ndarray) -> None:
        if len(y):
            self.count += len(y)
            self.low = min(self.low, float(y.min()))
            self.high = max(self.high, float(y.max()))

    def merge(self, other: LabelSummary) -> LabelSummary:
        self.count += other.count
        self.low, self.high = min(self.low, other.low), max(self.high, other.high)
        return self

    def extremes(self) -> np.ndarray:
        """The labels' smallest and largest value (empty when none was seen)."""
        return np.array([self.low, self.high][: 2 if self.count else 0], dtype=np.float64)
