"""Batch sources: what feeds the trainer one epoch of training batches at a time.

A source decides the order of the rows (seeded), splits every global batch among the ranks of a
data-parallel run, and can restart an epoch at any step, which is what makes a resumed run equal
an uninterrupted one. :class:`InMemorySource` gathers batches by index from tensors holding the
whole split (DESIGN.md §5: no per-sample ``Dataset``, no collation) — the default and the fastest
path.

Example:
    >>> split = Batch(torch.zeros(10, 1, dtype=torch.long), torch.arange(10.).unsqueeze(1),
    ...               torch.zeros(10, 1), torch.ones(10, 1, dtype=torch.bool))
    >>> source = InMemorySource(split, batch_size=4, seed=0)
    >>> source.steps_per_epoch
    3
    >>> [len(part.batch) for part in source.epoch(1)]
    [4, 4, 2]
    >>> [len(part.batch) for part in source.epoch(1, start_step=2)]
    [2]
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from mmoe.data.batch import Batch


@dataclass
class TrainBatch:
    """One rank's part of a global training batch.

    Args:
        batch: this rank's rows, labelled.
        global_rows: rows in the whole global batch (all ranks).
        label_counts: ``(T,)`` labels present per task in the global batch, or ``None`` in a
            single-process run (the loss then takes plain means over ``batch``).
    """

    batch: Batch
    global_rows: int
    label_counts: Tensor | None = None


class BatchSource(Protocol):
    """What the trainer needs from a source of training batches."""

    #: Steps (global batches) in one epoch, or ``None`` when the source cannot know in advance.
    steps_per_epoch: int | None
    #: Whether some labels are missing (the loss must then apply the label mask).
    has_missing_labels: bool

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[TrainBatch]:
        """This rank's batches of epoch ``epoch`` (1-based), from global step ``start_step`` on.

        The order must be a pure function of the source's seed and ``epoch`` (and the rank
        layout), so that restarting an epoch at ``start_step`` gives the same batches.
        """
        ...

    def state_dict(self) -> dict[str, int]:
        """Plain values that, with the trainer's epoch and step, fix the batch order (the same
        on every rank)."""
        ...


class InMemorySource:
    """Shuffled batches gathered by index from one ``Batch`` holding a whole labelled split.

    Every epoch draws a fresh permutation from a generator seeded with ``(seed, epoch)``, so the
    order of an epoch depends on nothing else and a resumed epoch repeats it exactly. Each global
    batch of ``batch_size`` rows is cut into ``world_size`` nearly equal contiguous parts; rank
    ``rank`` trains on its part.

    Args:
        split: the labelled split (on the device the model trains on: gathers happen there).
        batch_size: rows per global batch (all ranks together).
        seed: seed of the batch order.
        rank, world_size: this process's place in a data-parallel run.
    """

    def __init__(
        self, split: Batch, batch_size: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        assert split.labels is not None and split.label_mask is not None
        assert 0 <= rank < world_size
        self.split = split
        self.batch_size = batch_size
        self.seed = seed
        self.rank, self.world_size = rank, world_size
        self.steps_per_epoch: int | None = math.ceil(len(split) / batch_size)
        self.has_missing_labels = not bool(split.label_mask.all())

    def order(self, epoch: int) -> Tensor:
        """The permutation of the rows used in ``epoch`` (identical on every rank)."""
        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, epoch))
        return torch.randperm(len(self.split), generator=generator).to(self.split.numeric.device)

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[TrainBatch]:
        order = self.order(epoch)
        n, size = len(self.split), self.batch_size
        for start in range(start_step * size, n, size):
            rows = order[start : start + size]
            if self.world_size == 1:
                # Gathering each batch costs less memory than a shuffled copy of the whole split.
                yield TrainBatch(self.split.take(rows), len(rows))
                continue
            assert self.split.label_mask is not None
            present = self.split.label_mask.index_select(0, rows).to(torch.float32)
            if self.split.weights is not None:  # weighted loss: sums of weights per task
                present = present * self.split.weights.index_select(0, rows).unsqueeze(1)
            counts = present.sum(0)
            mine = rows.tensor_split(self.world_size)[self.rank]
            yield TrainBatch(self.split.take(mine), len(rows), counts)

    def state_dict(self) -> dict[str, int]:
        # The same on every rank: a checkpoint written by rank 0 resumes each of them.
        return {"seed": self.seed, "batch_size": self.batch_size, "world_size": self.world_size}


def _epoch_seed(seed: int, epoch: int) -> int:
    """A distinct 63-bit generator seed for every ``(seed, epoch)`` pair."""
    return (seed * 1_000_003 + epoch * 7_919 + 0x9E3779B97F4A7C15) % (2**63 - 1)


__all__ = ["BatchSource", "InMemorySource", "TrainBatch"]
