"""Batched prediction without autograd: logits (and gate weights) of every row of a ``Batch``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from mmoe.data.batch import Batch
from mmoe.models.base import MultiTaskModel


def predict_logits(
    model: MultiTaskModel,
    batch: Batch,
    batch_size: int = 65_536,
    gates: bool = False,
    on_gates: Callable[[Tensor], None] | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Logits ``(N, T)`` (and gate weights ``(N, G, E)`` if asked) of every row, on the CPU.

    Rows go through the model in slices of ``batch_size`` on the model's device; the batch may
    live on the CPU or on that device already. ``on_gates`` is called with each slice's gate
    weights ``(b, G, E)`` (on the model's device) when the model has gates, so statistics can be
    summed without keeping every row's gates.

    Example:
        >>> from mmoe.models import MMoE
        >>> from mmoe.specs import InputSpec
        >>> model = MMoE(InputSpec((), (), 3), ["a", "b"], num_experts=2)
        >>> batch = Batch(torch.zeros(5, 0, dtype=torch.long), torch.randn(5, 3))
        >>> z, g = predict_logits(model, batch, batch_size=2, gates=True)
        >>> tuple(z.shape), tuple(g.shape)
        ((5, 2), (5, 2, 2))
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    logits, weights = [], []
    try:
        with torch.inference_mode():
            for start in range(0, len(batch), batch_size):
                part = batch.slice(start, start + batch_size).to(device)
                z, g = model(part.categorical, part.numeric, return_gates=True)
                logits.append(z.cpu())
                if g is not None:
                    if on_gates is not None:
                        on_gates(g)
                    if gates:
                        weights.append(g.cpu())
    finally:
        model.train(was_training)
    if not logits:
        return torch.zeros(0, model.num_tasks), None
    return torch.cat(logits), (torch.cat(weights) if weights else None)
