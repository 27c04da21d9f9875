"""The plain state of a training run: counters and records, and what ``fit`` returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrainState:
    """The plain counters of a run (everything but tensors), as stored in a checkpoint."""

    step: int = 0  # optimizer updates done
    epoch: int = 1  # the epoch in progress (1-based)
    epoch_step: int = 0  # updates done in that epoch
    train_seconds: float = 0.0  # time in training steps, evaluation excluded
    interval_seconds: float = 0.0  # time in training steps since the last evaluation record
    running_steps: int = 0  # steps and global rows since the last evaluation record
    running_rows: int = 0
    finished: bool = False
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` did. ``best`` is the best evaluation record."""

    history: list[dict[str, Any]]
    best: dict[str, Any] | None
    steps: int
    stopped_early: bool
    train_seconds: float
