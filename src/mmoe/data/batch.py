"""The tensors a model consumes: one ``Batch`` holds a whole split or a slice of it.

Data lives in tensors and batches are index slices of them: there is no per-sample
``Dataset.__getitem__`` and no collation (DESIGN.md §5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Batch:
    """Model inputs and, when known, labels for ``B`` rows.

    Args:
        categorical: ``IntTensor[B, Fc]`` (or ``LongTensor``), per-feature vocabulary indices
            (0 = unknown); the preprocessor writes int32 to halve the memory of large splits.
        numeric: ``FloatTensor[B, Fn]``, standardised numeric features.
        labels: ``FloatTensor[B, T]`` (0/1 for binary tasks, values for regression), or ``None``.
        label_mask: ``BoolTensor[B, T]``, ``False`` where a task's label is missing, or ``None``.
        weights: ``FloatTensor[B]``, per-row sample weights (``data.weight_column``), or ``None``
            (every row weighs 1).

    Example:
        >>> b = Batch(torch.zeros(4, 2, dtype=torch.long), torch.zeros(4, 3))
        >>> len(b), len(b.slice(1, 3))
        (4, 2)
    """

    categorical: Tensor
    numeric: Tensor
    labels: Tensor | None = None
    label_mask: Tensor | None = None
    weights: Tensor | None = None

    def __post_init__(self) -> None:
        assert self.categorical.dim() == 2 and self.numeric.dim() == 2
        assert self.categorical.shape[0] == self.numeric.shape[0]
        assert (self.labels is None) == (self.label_mask is None)
        assert self.weights is None or self.weights.shape == (self.categorical.shape[0],)

    def __len__(self) -> int:
        return self.categorical.shape[0]

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    def slice(self, start: int, stop: int) -> Batch:
        """Rows ``start:stop`` as views (no copy)."""
        return Batch(*(None if t is None else t[start:stop] for t in self._tensors()))

    def take(self, index: Tensor) -> Batch:
        """Rows at ``index`` (a ``LongTensor``), copied in that order."""
        return Batch(*(None if t is None else t.index_select(0, index) for t in self._tensors()))

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(None if t is None else t.to(device) for t in self._tensors()))

    def _tensors(self) -> tuple[Tensor | None, ...]:
        return (self.categorical, self.numeric, self.labels, self.label_mask, self.weights)
