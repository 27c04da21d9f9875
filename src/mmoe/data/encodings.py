"""Numeric encodings: what a numeric column becomes before it reaches the model.

Standardised raw values are a poor input for skewed, zero-inflated columns (capital gains,
dividends, weeks worked): the first linear layer sees one direction per column. Each encoding
below gives the network a finer view of the column, fitted on training rows only:

==================  =============================================  ==========================
encoding            model input                                     fitted state
==================  =============================================  ==========================
``standardize``     ``(x - mean) / std`` (one numeric column)       mean, std (the preprocessor)
``values``          the exact value as a category: one embedded     sorted values seen in at
                    column, values seen in fewer than               least ``min_frequency``
                    ``min_frequency`` training rows → index 0       training rows
``quantile_bins``   the quantile bin as a category                  ``bins - 1`` interior edges
``tree_bins``       the leaf of a univariate regression tree        the tree's split thresholds
                    fitted on one task's label, as a category
``piecewise_linear``  ``bins`` numeric columns (Gorishniy et al.,   ``bins + 1`` quantile edges
                    NeurIPS 2022): column ``t`` is
                    ``clip((x - b_t) / (b_{t+1} - b_t), 0, 1)``
==================  =============================================  ==========================

``keep_raw`` (default true) also feeds the standardised value, so a bin encoding adds resolution
without losing the within-bin order. Missing values: the bin encodings send them to index 0
(with unknown/rare values of ``values``); ``piecewise_linear`` and the raw column impute the
training mean first, as ``standardize`` always has.

Categorical codes: index 0 is unknown/missing; ``values`` gives the ``k``-th smallest kept value
index ``k + 1``; the bin encodings give ``1 + #{edges e : x >= e}`` (bins ``1 .. len(edges)+1``).

**Export (standard ONNX operators).** Every encoding is comparisons and sums over a constant
vector, so the export path needs no custom operator (``x`` is ``(N, 1)`` float, ``c`` the
constant vector ``(1, K)``):

- ``standardize``: ``Sub``, ``Div`` (after ``IsNaN`` + ``Where`` for the mean imputation).
- ``values``: ``codes = ReduceSum(Cast(Equal(x, values)) * [1..K], axis=1)``: a value equal to
  none of the kept values (or NaN, which equals nothing) sums to 0.
- ``quantile_bins`` / ``tree_bins``: ``codes = 1 + ReduceSum(Cast(GreaterOrEqual(x, edges)))``,
  then ``Where(IsNaN(x), 0, codes)``.
- ``piecewise_linear``: ``Clip(Div(Sub(x, lower), width), 0, 1)`` with ``lower = edges[:-1]``
  and ``width = edges[1:] - edges[:-1]``.

**Streaming (``partial_fit``).** ``standardize`` (sums and counts) and ``values`` (a count per
value, merged by adding) have exact mergeable state, so they can be fitted in one streaming
pass. ``quantile_bins`` and ``piecewise_linear`` need quantiles of the whole column: exact only
with all values at hand (a mergeable quantile sketch would approximate them; not implemented),
and ``tree_bins`` needs every (value, label) pair sorted by value. Those three are fitted by
:func:`fit_encoding` on in-memory columns only; a streaming fit must refuse them or take a
second pass over a sample.

Example:
    >>> from mmoe.specs import NumericFeature
    >>> x = np.array([0.0, 0.0, 0.0, 1.0, 2.0, 2.0, np.nan])
    >>> enc = fit_encoding(NumericFeature(name="x", encoding="values", min_frequency=2), x)
    >>> enc.values, enc.transform(x)[0].tolist()
    ([0.0, 2.0], [1, 1, 1, 0, 2, 2, 0])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmoe.errors import ConfigError
from mmoe.specs import FeaturesConfig, NumericFeature

#: Encodings whose fitted state merges exactly across batches (streaming ``partial_fit``).
STREAMABLE = ("standardize", "values")
#: Encodings that add one embedded (categorical) column.
CATEGORICAL_ENCODINGS = ("values", "quantile_bins", "tree_bins")


@dataclass
class NumericEncoding:
    """The fitted state of one numeric column's encoding (plain data, saved as JSON).

    Args:
        kind: one of ``standardize | values | quantile_bins | tree_bins | piecewise_linear``.
        keep_raw: whether the standardised value is fed as well (always for ``standardize``).
        values: the kept values (``values``) or the bin edges (the other encodings), ascending.
    """

    kind: str
    keep_raw: bool = True
    values: list[float] = field(default_factory=list)

    @property
    def cardinality(self) -> int:
        """Size of the embedded column's vocabulary (index 0 included); 0 when none."""
        if self.kind == "values":
            return len(self.values) + 1
        if self.kind in ("quantile_bins", "tree_bins"):
            return len(self.values) + 2  # unknown + len(edges) + 1 bins
        return 0

    @property
    def numeric_width(self) -> int:
        """Numeric columns this encoding feeds: the raw value and/or piecewise-linear parts."""
        raw = 1 if (self.keep_raw or self.kind == "standardize") else 0
        return raw + (len(self.values) - 1 if self.kind == "piecewise_linear" else 0)

    def transform(
        self, x: np.ndarray, fill: float = 0.0
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``x`` ``(N,)`` raw floats (NaN = missing) → (codes ``(N,)`` int32 or None,
        piecewise-linear parts ``(N, bins)`` float32 or None). The raw column is the caller's.

        ``fill`` replaces missing values before the piecewise-linear parts (the training mean).
        """
        if self.kind == "values":
            kept = np.asarray(self.values, dtype=np.float64)
            pos = np.searchsorted(kept, x)
            hit = pos < len(kept)
            hit[hit] = kept[pos[hit]] == x[hit]  # NaN equals nothing: code 0
            return np.where(hit, pos + 1, 0).astype(np.int32), None
        if self.kind in ("quantile_bins", "tree_bins"):
            edges = np.asarray(self.values, dtype=np.float64)
            codes = np.searchsorted(edges, x, side="right") + 1  # 1 + #{e <= x}
            return np.where(np.isnan(x), 0, codes).astype(np.int32), None
        if self.kind == "piecewise_linear":
            edges = np.asarray(self.values, dtype=np.float64)
            width = np.diff(edges)
            x = np.where(np.isnan(x), fill, x)
            parts = np.clip((x[:, None] - edges[None, :-1]) / width[None, :], 0.0, 1.0)
            return None, parts.astype(np.float32)
        return None, None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "keep_raw": self.keep_raw, "values": list(self.values)}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> NumericEncoding:
        return cls(state["kind"], bool(state["keep_raw"]), [float(v) for v in state["values"]])


def fit_encoding(
    feature: NumericFeature,
    x: np.ndarray,
    target: np.ndarray | None = None,
    *,
    default_encoding: str = "standardize",
    default_bins: int = 32,
    default_min_frequency: int = 20,
    default_keep_raw: bool = True,
) -> NumericEncoding:
    """Fit the encoding of one numeric column on training values ``x`` ``(N,)`` (NaN = missing).

    Args:
        feature: the column's spec; unset options fall back to the ``default_*`` arguments.
        x: training values.
        target: for ``tree_bins``, the label of the chosen task ``(N,)`` (NaN where unlabelled).

    Example:
        >>> x = np.arange(8, dtype=float)
        >>> fit_encoding(NumericFeature(name="x", encoding="quantile_bins", bins=4), x).values
        [1.75, 3.5, 5.25]
    """
    kind = feature.encoding or default_encoding
    keep_raw = default_keep_raw if feature.keep_raw is None else feature.keep_raw
    bins = feature.bins or default_bins
    min_frequency = feature.min_frequency or default_min_frequency
    known = x[np.isfinite(x)]
    if kind == "standardize":
        return NumericEncoding(kind, True, [])
    if kind == "values":
        values, counts = np.unique(known, return_counts=True)
        return NumericEncoding(kind, keep_raw, values[counts >= min_frequency].tolist())
    if kind == "quantile_bins":
        return NumericEncoding(kind, keep_raw, _quantile_edges(known, bins)[1:-1])
    if kind == "piecewise_linear":
        edges = _quantile_edges(known, bins)
        if len(edges) < 2:  # a constant column: one part, always 0
            edges = [edges[0] if edges else 0.0, (edges[0] if edges else 0.0) + 1.0]
        return NumericEncoding(kind, keep_raw, edges)
    if kind == "tree_bins":
        if target is None:
            raise ValueError(f"tree_bins of {feature.name!r} needs a task label to fit on")
        labelled = np.isfinite(x) & np.isfinite(target)
        edges = tree_thresholds(x[labelled], target[labelled], bins, min_frequency)
        return NumericEncoding(kind, keep_raw, edges)
    raise ValueError(f"unknown numeric encoding {kind!r}")


def _quantile_edges(known: np.ndarray, bins: int) -> list[float]:
    """``bins + 1`` quantile edges (min … max) of the known values, duplicates removed."""
    if known.size == 0:
        return []
    edges = np.quantile(known, np.linspace(0.0, 1.0, bins + 1))
    return np.unique(edges).tolist()


def tree_thresholds(x: np.ndarray, y: np.ndarray, max_leaves: int, min_leaf: int) -> list[float]:
    """Split thresholds of a best-first univariate regression tree (squared error).

    For a 0/1 label, squared-error reduction equals Gini gain up to a constant, so one rule
    serves binary and regression tasks. Leaves grow best first until ``max_leaves`` leaves or
    no split leaves at least ``min_leaf`` rows on each side; thresholds sit midway between two
    adjacent distinct values. Returns the thresholds in ascending order.

    Example:
        >>> x = np.array([1.0, 2.0, 3.0, 10.0, 11.0, 12.0])
        >>> tree_thresholds(x, np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]), 4, 1)
        [6.5]
    """
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order].astype(np.float64)
    values, starts = np.unique(xs, return_index=True)
    # Per distinct value: row count and label sum; a split falls between two distinct values.
    counts = np.diff(np.append(starts, len(xs)))
    sums = np.add.reduceat(ys, starts) if len(xs) else np.zeros(0)
    cum_n, cum_s = np.cumsum(counts), np.cumsum(sums)

    def best_split(lo: int, hi: int) -> tuple[float, int]:
        """Best gain and split index ``k`` (left = values[lo:k+1]) within values[lo:hi]."""
        if hi - lo < 2:
            return 0.0, -1
        base_n = cum_n[lo - 1] if lo else 0
        base_s = cum_s[lo - 1] if lo else 0.0
        n_left = cum_n[lo : hi - 1] - base_n
        s_left = cum_s[lo : hi - 1] - base_s
        n_all, s_all = cum_n[hi - 1] - base_n, cum_s[hi - 1] - base_s
        n_right, s_right = n_all - n_left, s_all - s_left
        ok = (n_left >= min_leaf) & (n_right >= min_leaf)
        if not ok.any():
            return 0.0, -1
        with np.errstate(divide="ignore", invalid="ignore"):
            gain = s_left**2 / n_left + s_right**2 / n_right - s_all**2 / n_all
        gain = np.where(ok, gain, -np.inf)
        k = int(np.argmax(gain))
        return float(gain[k]), lo + k

    leaves = [(lo_hi, best_split(*lo_hi)) for lo_hi in [(0, len(values))]]
    thresholds: list[float] = []
    while len(thresholds) + 1 < max_leaves:
        candidates = [i for i, (_, (g, k)) in enumerate(leaves) if k >= 0 and g > 1e-12]
        if not candidates:
            break
        i = max(candidates, key=lambda j: leaves[j][1][0])
        (lo, hi), (_, k) = leaves.pop(i)
        thresholds.append(float((values[k] + values[k + 1]) / 2))
        for part in ((lo, k + 1), (k + 1, hi)):
            leaves.append((part, best_split(*part)))
    return sorted(thresholds)


def fit_encodings(
    features: FeaturesConfig,
    columns: dict[str, np.ndarray],
    targets: dict[str, np.ndarray],
    first_task: str,
) -> dict[str, NumericEncoding]:
    """Fit every numeric column's encoding: ``{name: raw training values (N,)}`` → states.

    ``targets`` maps task names to labels ``(N,)`` with NaN where unlabelled (for ``tree_bins``).
    """
    encodings = {}
    for feat in features.numeric:
        task = feat.tree_task or first_task
        if features.encoding_of(feat) == "tree_bins" and task not in targets:
            raise ConfigError(
                f"numeric feature {feat.name!r}: tree_task {task!r} is not a task of this run; "
                f"choose one of {', '.join(targets)}"
            )
        encodings[feat.name] = fit_encoding(
            feat,
            columns[feat.name],
            targets.get(task),
            default_encoding=features.numeric_encoding,
            default_bins=features.numeric_bins,
            default_min_frequency=features.numeric_min_frequency,
            default_keep_raw=features.numeric_keep_raw,
        )
    return encodings


def encode_columns(
    features: FeaturesConfig,
    encodings: dict[str, NumericEncoding],
    raw: dict[str, np.ndarray],
    standardized: dict[str, np.ndarray],
    means: dict[str, float],
) -> tuple[np.ndarray, np.ndarray]:
    """The encoded numeric columns of ``N`` rows: (codes ``(N, Fe)`` int32, numeric ``(N, W)``).

    ``means``: training means, which replace missing values before piecewise-linear parts.
    Layout: one code column per categorical-style encoding, in numeric-feature order (they
    follow the configured categorical features); numeric columns per feature in order: the
    standardised value (when kept), then its piecewise-linear parts.
    """
    n = len(next(iter(raw.values()))) if raw else 0
    codes, numeric = [], []
    for feat in features.numeric:
        enc = encodings[feat.name]
        code, parts = enc.transform(raw[feat.name], fill=means[feat.name])
        if enc.keep_raw or enc.kind == "standardize":
            numeric.append(standardized[feat.name].astype(np.float32)[:, None])
        if parts is not None:
            numeric.append(parts)
        if code is not None:
            codes.append(code[:, None])
    cat = np.hstack(codes) if codes else np.zeros((n, 0), dtype=np.int32)
    num = np.hstack(numeric) if numeric else np.zeros((n, 0), dtype=np.float32)
    return cat, num


def encoded_inputs(
    features: FeaturesConfig, encodings: dict[str, NumericEncoding]
) -> tuple[list[int], list[int], int]:
    """(cardinalities, embedding widths) of the added embedded columns, and the numeric width."""
    cards, dims, width = [], [], 0
    for feat in features.numeric:
        enc = encodings[feat.name]
        if enc.cardinality:
            cards.append(enc.cardinality)
            dims.append(feat.embedding_dim or features.embedding_dim)
        width += enc.numeric_width
    return cards, dims, width


__all__ = [
    "CATEGORICAL_ENCODINGS",
    "STREAMABLE",
    "NumericEncoding",
    "encode_columns",
    "encoded_inputs",
    "fit_encoding",
    "fit_encodings",
    "tree_thresholds",
]
