"""Adam for the training loop: one fused kernel per step, without ``torch.optim``'s overheads.

``torch.optim.Adam(fused=True)`` runs the same kernel, but constructing any ``torch.optim``
optimizer imports ``torch._dynamo`` (with sympy and mpmath): about 70 MiB of resident memory and
one to two seconds of start-up on a small CPU machine, for a model of a few thousand weights.
Its ``step`` also regroups the tensors by device and dtype and runs hooks and profiler
bookkeeping on every call. :class:`FusedAdam` keeps the state lists once and calls the kernel
directly; ``tests/test_training.py`` checks that its updates are bit-identical to
``torch.optim.Adam(fused=True)``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn


class FusedAdam:
    """Adam (Kingma and Ba, 2015) for float32 CPU parameters, weight decay as in ``torch.optim``.

    Args:
        params: the parameters to update (those with ``requires_grad``).
        lr: learning rate.
        betas: decay rates of the first and second moment estimates.
        eps: added to the denominator.
        weight_decay: L2 penalty added to the gradient (Adam's, not AdamW's, form).

    A parameter whose ``grad`` is ``None`` at a step is left alone, and its step count does not
    advance, as in ``torch.optim.Adam``.

    Example:
        >>> w = nn.Parameter(torch.ones(3))
        >>> opt = FusedAdam([w], lr=0.1)
        >>> (w * torch.tensor([1.0, -1.0, 0.0])).sum().backward()
        >>> opt.step()
        >>> [round(v, 4) for v in w.tolist()]
        [0.9, 1.1, 1.0]
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        if not all(map(_fusable, self.params)):
            raise ValueError("FusedAdam takes float32 CPU parameters; use torch.optim.Adam")
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.exp_avgs = [
            torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params
        ]
        self.exp_avg_sqs = [
            torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params
        ]
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in self.params]

    def zero_grad(self) -> None:
        """Drop the gradients (``set_to_none``), so the next backward writes fresh ones."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        if len(live) == len(self.params):
            params, avgs, sqs, steps = self.params, self.exp_avgs, self.exp_avg_sqs, self.steps
        else:
            params = [self.params[i] for i in live]
            avgs = [self.exp_avgs[i] for i in live]
            sqs = [self.exp_avg_sqs[i] for i in live]
            steps = [self.steps[i] for i in live]
        grads: list[Tensor] = [p.grad for p in params]  # type: ignore[misc]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            params,
            grads,
            avgs,
            sqs,
            [],  # max_exp_avg_sqs: amsgrad is off
            steps,
            lr=self.lr,
            beta1=self.betas[0],
            beta2=self.betas[1],
            weight_decay=self.weight_decay,
            eps=self.eps,
            amsgrad=False,
            maximize=False,
        )


def make_adam(
    params: Iterable[nn.Parameter], lr: float, weight_decay: float = 0.0
) -> FusedAdam | torch.optim.Optimizer:
    """:class:`FusedAdam` for float32 CPU parameters (mmoe's models), ``torch.optim.Adam`` else.

    Example:
        >>> type(make_adam(nn.Linear(2, 1).parameters(), lr=1e-3)).__name__
        'FusedAdam'
    """
    params = [p for p in params if p.requires_grad]
    if all(map(_fusable, params)):
        return FusedAdam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def _fusable(p: Tensor) -> bool:
    return p.dtype == torch.float32 and p.device.type == "cpu"
