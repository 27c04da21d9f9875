"""Learning-rate schedules as pure functions of the step counter.

The learning rate of update ``step`` (0-based: the index of the update about to run) out of
``total_steps`` is ``base_lr * lr_factor(step, total_steps, schedule, warmup_steps)``. Nothing is
stored, so a run resumed from a checkpoint gets the same rates from its step counter alone.

Warm-up: for ``step < warmup_steps`` the factor is ``(step + 1) / warmup_steps``, a linear ramp
that reaches 1 at the last warm-up step (the first update is not wasted on a rate of 0, unlike
``torch.optim.lr_scheduler.LinearLR`` with ``start_factor=0``). After warm-up, with
``progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)``, in [0, 1):

- ``"constant"``: 1;
- ``"linear"``: ``1 - progress``, decaying towards 0 (the last update has ``1 / n`` of the base
  rate for ``n`` decay steps, never 0);
- ``"cosine"``: ``0.5 * (1 + cos(pi * progress))``, cosine annealing (Loshchilov and Hutter,
  2017, without restarts) towards 0.

Example:
    >>> [round(lr_factor(s, 10, "linear", warmup_steps=2), 3) for s in range(10)]
    [0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125]
    >>> lr_factor(50, 100, "cosine")
    0.5
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

SCHEDULES = ("constant", "linear", "cosine")


class HasParamGroups(Protocol):
    """An optimizer: ``torch.optim.Optimizer`` or :class:`mmoe.training.optim.FusedAdam`."""

    param_groups: list[dict[str, Any]]


def lr_factor(step: int, total_steps: int, schedule: str, warmup_steps: int = 0) -> float:
    """The factor of the base learning rate for update ``step`` (0-based) of ``total_steps``.

    Args:
        step: index of the update about to run, from 0.
        total_steps: number of updates in the run, warm-up included.
        schedule: ``"constant"``, ``"linear"`` or ``"cosine"``, the shape after warm-up.
        warmup_steps: number of first updates whose rate ramps linearly up to the base rate.

    Returns:
        A factor in [0, 1].

    Raises:
        ValueError: unknown ``schedule``, or a negative ``step`` or ``warmup_steps``.

    Example:
        >>> lr_factor(0, 100, "cosine", warmup_steps=10), lr_factor(9, 100, "cosine", 10)
        (0.1, 1.0)
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; use one of {SCHEDULES}")
    if step < 0 or warmup_steps < 0:
        raise ValueError(f"step ({step}) and warmup_steps ({warmup_steps}) must be >= 0")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def set_learning_rate(optimizer: HasParamGroups, base_lrs: Sequence[float], factor: float) -> None:
    """Set each parameter group's ``lr`` to its base rate times ``factor``.

    Args:
        optimizer: anything with ``param_groups`` (``torch.optim`` optimizers, ``FusedAdam``).
        base_lrs: the base learning rate of each group, in order (one per group).
        factor: typically :func:`lr_factor` of the update about to run.

    Raises:
        ValueError: ``base_lrs`` does not have one rate per group.

    Example:
        >>> from mmoe.training.optim import FusedAdam
        >>> opt = FusedAdam([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
        >>> set_learning_rate(opt, [0.1], lr_factor(0, 10, "constant", warmup_steps=4))
        >>> opt.param_groups[0]["lr"]
        0.025
    """
    groups = optimizer.param_groups
    if len(base_lrs) != len(groups):
        raise ValueError(
            f"{len(base_lrs)} base learning rates for {len(groups)} parameter groups; "
            "pass one per group"
        )
    for group, base in zip(groups, base_lrs, strict=True):
        group["lr"] = base * factor
