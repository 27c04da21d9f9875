"""Model selection during training: the best evaluation so far, its weights, and patience."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mmoe.training.metrics import is_better


class BestKeeper:
    """Remembers the best evaluation and its weights; says when patience has run out.

    Args:
        task, metric: the validation metric that ranks evaluations (e.g. ``income``, ``auc``).
        patience: evaluations without improvement before training stops; ``None``: never.

    Example:
        >>> keeper = BestKeeper("y", "mse", patience=2)
        >>> model = nn.Linear(1, 1)
        >>> [keeper.update({"valid": {"y": {"mse": v}}}, model) for v in (3.0, 2.0, 2.5, 2.1)]
        [False, False, False, True]
        >>> keeper.score(keeper.record)
        2.0
    """

    def __init__(self, task: str, metric: str, patience: int | None) -> None:
        self.task, self.metric, self.patience = task, metric, patience
        self.record: dict[str, Any] | None = None
        self.state: dict[str, torch.Tensor] | None = None
        self.stale = 0

    def score(self, record: dict[str, Any]) -> float:
        value = record["valid"][self.task][self.metric]
        return float("nan") if value is None else value

    def update(self, record: dict[str, Any], model: nn.Module) -> bool:
        """Keep ``record`` if it is the best so far; return whether training should stop."""
        old = None if self.record is None else self.score(self.record)
        if is_better(self.metric, self.score(record), old):
            self.record = record
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.stale = 0
        else:
            self.stale += 1
        return self.patience is not None and self.stale >= self.patience

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The best weights (tensors) and the plain values (record, staleness)."""
        return dict(self.state or {}), {"record": self.record, "stale": self.stale}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> None:
        self.record, self.stale = plain["record"], plain["stale"]
        self.state = dict(tensors) if tensors else None
