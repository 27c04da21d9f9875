"""A torch without the private fused-Adam kernel (or with a changed one) still trains."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmoe.training import optim


def train_steps(opt_name: str, steps: int = 5) -> torch.Tensor:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = optim.make_optimizer(opt_name, model.parameters(), lr=0.01, weight_decay=0.01)
    x = torch.randn(16, 4)
    for _ in range(steps):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_fallback_when_the_private_kernel_is_missing(name, monkeypatch):
    clear_caches()
    expected = train_steps(name)  # FusedAdam over the private kernel
    assert type(optim.make_optimizer(name, nn.Linear(2, 1).parameters(), lr=1e-3)).__name__ == (
        "FusedAdam"
    )
    monkeypatch.delattr(torch, "_fused_adam_")
    monkeypatch.delattr(torch, "_fused_adamw_")
    clear_caches()
    try:
        opt = optim.make_optimizer(name, nn.Linear(2, 1).parameters(), lr=1e-3)
        # torch.optim's fused Adam calls the same private kernel, so the fallback is its loop.
        assert isinstance(opt, torch.optim.Adam | torch.optim.AdamW)
        assert not opt.param_groups[0]["fused"]
        torch.testing.assert_close(train_steps(name), expected)  # the same update
    finally:
        clear_caches()


def test_fallback_when_the_private_kernel_changed(monkeypatch):
    def changed(*args, **kwargs):
        raise TypeError("_fused_adam_() got an unexpected keyword argument 'lr'")

    clear_caches()
    expected = train_steps("adam")
    monkeypatch.setattr(torch, "_fused_adam_", changed)
    clear_caches()
    try:
        assert not optim.private_kernel_works()
        opt = optim.make_optimizer("adam", nn.Linear(2, 1).parameters(), lr=1e-3)
        assert isinstance(opt, torch.optim.Adam)
        torch.testing.assert_close(train_steps("adam"), expected)
    finally:
        clear_caches()


def clear_caches() -> None:
    optim.private_kernel_works.cache_clear()
    optim.torch_fused_works.cache_clear()
