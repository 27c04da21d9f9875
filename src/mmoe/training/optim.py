"""Adam for the training loop: one fused kernel per step, without ``torch.optim``'s overheads.

``torch.optim.Adam(fused=True)`` runs the same kernel, but constructing any ``torch.optim``
optimizer imports ``torch._dynamo`` (with sympy and mpmath): about 70 MiB of resident memory and
one to two seconds of start-up on a small CPU machine, for a model of a few thousand weights.
Its ``step`` also regroups the tensors by device and dtype and runs hooks and profiler
bookkeeping on every call. :class:`FusedAdam` keeps the state lists once and calls the kernel
directly (``torch._fused_adam_``, or ``torch._fused_adamw_`` for AdamW); ``tests/test_optim.py``
checks that its updates are bit-identical to ``torch.optim.Adam(fused=True)`` and
``torch.optim.AdamW(fused=True)``, and that its ``state_dict`` loads into those and back.

:func:`make_optimizer` picks :class:`FusedAdam` where it applies (float32 CPU parameters, mmoe's
models) and a ``torch.optim`` optimizer elsewhere.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

# The group keys torch.optim.Adam (2.13) writes besides the four FusedAdam uses, with the values
# that describe FusedAdam's update, so that its state_dict loads into torch.optim.Adam/AdamW and
# continues with the same (fused) kernel.
_TORCH_GROUP_KEYS = {
    "amsgrad": False,
    "maximize": False,
    "foreach": None,
    "capturable": False,
    "differentiable": False,
    "fused": True,
}
_HYPER_KEYS = ("lr", "betas", "eps", "weight_decay")


class FusedAdam:
    """Adam (Kingma and Ba, 2015) or AdamW (Loshchilov and Hutter, 2019) for float32 CPU params.

    Args:
        params: the parameters to update, or parameter groups as in ``torch.optim``: dicts with
            ``"params"`` and optionally ``"lr"``, ``"betas"``, ``"eps"``, ``"weight_decay"``
            (missing keys take the values below). Parameters without ``requires_grad`` are
            dropped, so they take no place in the numbering of :meth:`state_dict`.
        lr: learning rate.
        betas: decay rates of the first and second moment estimates.
        eps: added to the denominator.
        weight_decay: L2 penalty added to the gradient (Adam), or, with
            ``decoupled_weight_decay``, the factor of ``lr * weight_decay * param`` taken off the
            parameter before the update (AdamW).
        decoupled_weight_decay: AdamW's weight decay instead of Adam's.

    ``param_groups`` holds one dict per group with ``params``, ``lr``, ``betas``, ``eps`` and
    ``weight_decay``; the hyperparameters are read at every :meth:`step`, so a schedule may set
    ``group["lr"]`` between steps. The parameters of a group cannot be changed after
    construction. A parameter whose ``grad`` is ``None`` at a step is left alone, and its step
    count does not advance, as in ``torch.optim.Adam``.

    Example:
        >>> w = nn.Parameter(torch.ones(3))
        >>> opt = FusedAdam([w], lr=0.1)
        >>> (w * torch.tensor([1.0, -1.0, 0.0])).sum().backward()
        >>> opt.step()
        >>> [round(v, 4) for v in w.tolist()]
        [0.9, 1.1, 1.0]
        >>> opt.param_groups[0]["lr"] = 0.01  # takes effect at the next step
        >>> opt.state_dict()["state"][0]["step"]
        tensor(1.)
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter] | Iterable[Mapping[str, Any]],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay}
        self.decoupled_weight_decay = decoupled_weight_decay
        self._kernel = torch._fused_adamw_ if decoupled_weight_decay else torch._fused_adam_
        self.param_groups: list[dict[str, Any]] = [
            _make_group(group, defaults) for group in _as_groups(params)
        ]
        if not self.param_groups:
            raise ValueError("FusedAdam got no parameters; pass a non-empty list")
        # The flat lists, in the numbering of state_dict (group by group, in order).
        self.params = [p for group in self.param_groups for p in group["params"]]
        if not all(map(_fusable, self.params)):
            raise ValueError("FusedAdam takes float32 CPU parameters; use torch.optim.Adam")
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError("FusedAdam got a parameter twice; put each in one group only")
        self.exp_avgs = [
            torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params
        ]
        self.exp_avg_sqs = [
            torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params
        ]
        self.steps = [torch.zeros((), dtype=torch.float32) for _ in self.params]
        # Per group: (group, params, exp_avgs, exp_avg_sqs, steps), slices of the flat lists (the
        # same tensors) made once, so step() only builds lists when some parameter has no grad.
        self._groups: list[
            tuple[dict[str, Any], list[Tensor], list[Tensor], list[Tensor], list[Tensor]]
        ] = []
        start = 0
        for group in self.param_groups:
            end = start + len(group["params"])
            if len(self.param_groups) == 1:
                lists = (self.params, self.exp_avgs, self.exp_avg_sqs, self.steps)
            else:
                lists = tuple(
                    flat[start:end]
                    for flat in (self.params, self.exp_avgs, self.exp_avg_sqs, self.steps)
                )
            self._groups.append((group, *lists))
            start = end

    def zero_grad(self) -> None:
        """Drop the gradients (``set_to_none``), so the next backward writes fresh ones."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter that has a gradient: a kernel call per group."""
        for group, params, avgs, sqs, steps in self._groups:
            live = [i for i, p in enumerate(params) if p.grad is not None]
            if len(live) != len(params):
                if not live:
                    continue
                params = [params[i] for i in live]
                avgs = [avgs[i] for i in live]
                sqs = [sqs[i] for i in live]
                steps = [steps[i] for i in live]
            grads: list[Tensor] = [p.grad for p in params]  # type: ignore[misc]
            beta1, beta2 = group["betas"]
            torch._foreach_add_(steps, 1)
            self._kernel(
                params,
                grads,
                avgs,
                sqs,
                [],  # max_exp_avg_sqs: amsgrad is off
                steps,
                lr=group["lr"],
                beta1=beta1,
                beta2=beta2,
                weight_decay=group["weight_decay"],
                eps=group["eps"],
                amsgrad=False,
                maximize=False,
            )

    def state_dict(self) -> dict[str, Any]:
        """The state in ``torch.optim.Adam``'s format, as a snapshot.

        ``{"state": {i: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [...]}`` with the
        parameters numbered from 0 across the groups in order. As in ``torch.optim``, a parameter
        that has never been updated has no ``state`` entry. The tensors are contiguous copies
        (``step`` a float32 scalar), so later steps do not change them and they can be written
        to safetensors as they are. Each group holds ``lr``, ``betas``, ``eps``,
        ``weight_decay``, the flags ``torch.optim.Adam`` writes (``fused=True``,
        ``decoupled_weight_decay``, ...) and ``params``, a list of indices; the dict loads into
        ``torch.optim.Adam`` (or ``AdamW`` with ``decoupled_weight_decay``) over the same
        parameters and makes it continue with the same fused kernel.
        """
        state: dict[int, dict[str, Tensor]] = {}
        for i, step in enumerate(self.steps):
            if step.item() > 0:
                state[i] = {
                    "step": step.clone(),
                    "exp_avg": self.exp_avgs[i].clone(memory_format=torch.contiguous_format),
                    "exp_avg_sq": self.exp_avg_sqs[i].clone(memory_format=torch.contiguous_format),
                }
        groups, start = [], 0
        for group in self.param_groups:
            end = start + len(group["params"])
            saved = {key: group[key] for key in _HYPER_KEYS}
            saved["betas"] = tuple(saved["betas"])
            saved.update(_TORCH_GROUP_KEYS, decoupled_weight_decay=self.decoupled_weight_decay)
            saved["params"] = list(range(start, end))
            groups.append(saved)
            start = end
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Take the state of :meth:`state_dict`, or of ``torch.optim.Adam``/``AdamW``.

        The moments and step counts are copied in place into this optimizer's tensors; a
        parameter without a ``state`` entry starts afresh. Each group's ``lr``, ``betas``,
        ``eps`` and ``weight_decay`` are taken from the saved group, other keys are ignored.
        Parameters are matched by position, group by group, as in ``torch.optim``; ``state``
        keys may be ints or their strings (as after JSON).

        Raises:
            ValueError: the state is for other parameters (group count, group sizes or shapes
                differ) or for another algorithm (AdamW vs Adam, amsgrad, maximize). Nothing is
                changed then.
        """
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"optimizer state has {len(saved_groups)} parameter groups, this optimizer "
                f"{len(self.param_groups)}; load it into an optimizer over the same groups"
            )
        index: dict[int, int] = {}  # saved parameter id -> position in self.params
        for g, (saved, group) in enumerate(zip(saved_groups, self.param_groups, strict=True)):
            ids = list(saved["params"])
            if len(ids) != len(group["params"]):
                raise ValueError(
                    f"optimizer state group {g} has {len(ids)} parameters, this optimizer's "
                    f"{len(group['params'])}; load it into an optimizer over the same parameters"
                )
            index.update(zip(ids, range(len(index), len(index) + len(ids)), strict=True))
            if saved.get("decoupled_weight_decay", self.decoupled_weight_decay) != (
                self.decoupled_weight_decay
            ):
                mine, theirs = (
                    ("AdamW", "Adam") if self.decoupled_weight_decay else ("Adam", "AdamW")
                )
                raise ValueError(f"optimizer state is {theirs}'s, this optimizer is {mine}")
            if saved.get("amsgrad") or saved.get("maximize"):
                raise ValueError("optimizer state uses amsgrad or maximize, which FusedAdam lacks")
        entries: dict[int, Mapping[str, Any]] = {}
        for key, entry in state_dict["state"].items():
            i = index.get(int(key))
            if i is None:
                raise ValueError(f"optimizer state has an entry for unknown parameter {key}")
            for name in ("exp_avg", "exp_avg_sq"):
                value = entry.get(name)
                shape = tuple(self.params[i].shape)
                if not isinstance(value, Tensor) or tuple(value.shape) != shape:
                    found = tuple(value.shape) if isinstance(value, Tensor) else type(value)
                    raise ValueError(
                        f"optimizer state {name} of parameter {key} is {found}, expected a "
                        f"tensor of shape {shape}"
                    )
            if "step" not in entry:
                raise ValueError(f"optimizer state of parameter {key} has no step")
            entries[i] = entry
        for saved, group in zip(saved_groups, self.param_groups, strict=True):
            for key in _HYPER_KEYS:
                if key in saved:
                    group[key] = saved[key]
            group["betas"] = tuple(float(b) for b in group["betas"])
        for i in range(len(self.params)):
            entry = entries.get(i)
            if entry is None:
                self.steps[i].zero_()
                self.exp_avgs[i].zero_()
                self.exp_avg_sqs[i].zero_()
            else:
                self.steps[i].copy_(torch.as_tensor(entry["step"]))
                self.exp_avgs[i].copy_(entry["exp_avg"])
                self.exp_avg_sqs[i].copy_(entry["exp_avg_sq"])


def load_optimizer_state(
    optimizer: FusedAdam | torch.optim.Optimizer, state: Mapping[str, Any]
) -> None:
    """``optimizer.load_state_dict(state)``, with every moment laid out like its parameter.

    ``torch.optim`` moves loaded moments to the parameter's device as contiguous tensors, while
    a fresh optimizer's moments copy the parameter's strides (mmoe's first expert layer is stored
    transposed). The fused CUDA kernel refuses tensors whose layouts differ, so the moments are
    copied back into the parameter's layout. :class:`FusedAdam` copies in place already.
    """
    optimizer.load_state_dict(dict(state))
    if isinstance(optimizer, FusedAdam):
        return
    for group in optimizer.param_groups:
        for p in group["params"]:
            entry = optimizer.state.get(p, {})
            for key, value in entry.items():
                if (
                    isinstance(value, Tensor)
                    and value.shape == p.shape
                    and value.stride() != p.stride()
                ):
                    entry[key] = torch.empty_like(p, dtype=value.dtype).copy_(value)


def make_optimizer(
    name: str,
    params: Iterable[nn.Parameter] | Iterable[Mapping[str, Any]],
    lr: float,
    weight_decay: float = 0.0,
) -> FusedAdam | torch.optim.Optimizer:
    """The optimizer ``name`` over the parameters that require a gradient.

    Args:
        name: ``"adam"``: :class:`FusedAdam` for float32 CPU parameters (mmoe's models; if
            this torch lacks the private kernel, ``torch.optim.Adam(fused=True)`` or, failing
            that, torch's default Adam loop),
            ``torch.optim.Adam(fused=True)`` when all are float32 or bfloat16 CUDA parameters,
            plain ``torch.optim.Adam`` otherwise. ``"adamw"``: the same with AdamW's decoupled
            weight decay (``FusedAdam(decoupled_weight_decay=True)`` or ``torch.optim.AdamW``).
            ``"torch_adam"``: always ``torch.optim.Adam`` with torch's default implementation
            (``foreach`` on CUDA, the per-parameter loop on CPU), which is not bit-identical to
            the fused kernel; a reference for comparisons.
        params: parameters or parameter groups, as for :class:`FusedAdam`.
        lr: learning rate.
        weight_decay: Adam's L2 penalty, or AdamW's decoupled decay factor.

    Raises:
        ValueError: ``name`` is not one of the three.

    Example:
        >>> type(make_optimizer("adamw", nn.Linear(2, 1).parameters(), lr=1e-3)).__name__
        'FusedAdam'
    """
    if name not in ("adam", "adamw", "torch_adam"):
        raise ValueError(f"unknown optimizer {name!r}; use 'adam', 'adamw' or 'torch_adam'")
    groups = [
        {**group, "params": [p for p in group["params"] if p.requires_grad]}
        for group in _as_groups(params)
    ]
    flat = [p for group in groups for p in group["params"]]
    decoupled = name == "adamw"
    cpu_fusable = bool(flat) and all(map(_fusable, flat))
    if name != "torch_adam" and cpu_fusable and private_kernel_works(decoupled):
        return FusedAdam(groups, lr=lr, weight_decay=weight_decay, decoupled_weight_decay=decoupled)
    if name == "torch_adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    # CUDA tensors, or a torch whose private kernel is missing or changed: torch.optim's own
    # fused implementation where it works (the same update), else its default loop.
    fused = bool(flat) and (
        all(map(_cuda_fusable, flat)) or (cpu_fusable and torch_fused_works(decoupled))
    )
    optimizer_class = torch.optim.AdamW if decoupled else torch.optim.Adam
    return optimizer_class(groups, lr=lr, weight_decay=weight_decay, fused=fused or None)


@functools.cache
def private_kernel_works(decoupled: bool = False) -> bool:
    """Whether this torch has ``torch._fused_adam_`` (``_fused_adamw_``) as FusedAdam calls it.

    The kernel is private: a torch release may rename it or change its arguments. One update of
    a one-element tensor is tried once per process; on any failure :func:`make_optimizer` falls
    back to ``torch.optim.Adam(fused=True)`` (``AdamW``), which runs the same update.
    ``tests/test_optim.py`` simulates a torch without the kernel.

    Example:
        >>> private_kernel_works()
        True
    """
    name = "_fused_adamw_" if decoupled else "_fused_adam_"
    kernel = getattr(torch, name, None)
    if kernel is None:
        return False
    p, g = torch.zeros(1), torch.ones(1)
    m, v, step = torch.zeros(1), torch.zeros(1), torch.ones(())
    try:
        kernel(
            [p], [g], [m], [v], [], [step], lr=0.1, beta1=0.9, beta2=0.999,
            weight_decay=0.0, eps=1e-8, amsgrad=False, maximize=False,
        )  # fmt: skip
    except (RuntimeError, TypeError, ValueError):
        return False
    return bool(p.item() < 0)  # one Adam step against a positive gradient lowers the weight


@functools.cache
def torch_fused_works(decoupled: bool = False) -> bool:
    """Whether ``torch.optim.Adam(fused=True)`` (``AdamW``) can step a float32 CPU tensor here.

    Tried once per process, only when :func:`private_kernel_works` is false: the fallback
    prefers torch's fused implementation and takes its default loop when that fails too.
    """
    param = nn.Parameter(torch.zeros(1))
    param.grad = torch.ones(1)
    optimizer_class = torch.optim.AdamW if decoupled else torch.optim.Adam
    try:
        optimizer_class([param], lr=0.1, fused=True).step()
    except (RuntimeError, TypeError, ValueError, AttributeError):
        return False
    return True


def make_adam(
    params: Iterable[nn.Parameter], lr: float, weight_decay: float = 0.0
) -> FusedAdam | torch.optim.Optimizer:
    """``make_optimizer("adam", ...)``: :class:`FusedAdam` for float32 CPU parameters.

    Example:
        >>> type(make_adam(nn.Linear(2, 1).parameters(), lr=1e-3)).__name__
        'FusedAdam'
    """
    return make_optimizer("adam", params, lr=lr, weight_decay=weight_decay)


def _as_groups(
    params: Iterable[nn.Parameter] | Iterable[Mapping[str, Any]],
) -> list[Mapping[str, Any]]:
    """Parameter groups: a list of tensors is one group."""
    items = list(params)
    if items and all(isinstance(item, Mapping) for item in items):
        return items  # type: ignore[return-value]
    if any(isinstance(item, Mapping) for item in items):
        raise ValueError("params mixes parameters and parameter groups; pass one or the other")
    return [{"params": items}]


def _make_group(group: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(group) - {"params", *defaults})
    if unknown:
        raise ValueError(f"unknown parameter group keys {unknown}; use {sorted(defaults)}")
    made = {**defaults, **group}
    params = made["params"]
    params = [params] if isinstance(params, Tensor) else list(params)
    made["params"] = [p for p in params if p.requires_grad]
    made["betas"] = tuple(float(b) for b in made["betas"])
    lr, eps, weight_decay = made["lr"], made["eps"], made["weight_decay"]
    if not (lr >= 0 and eps >= 0 and weight_decay >= 0 and all(0 <= b < 1 for b in made["betas"])):
        raise ValueError(
            f"invalid Adam hyperparameters lr={lr}, betas={made['betas']}, eps={eps}, "
            f"weight_decay={weight_decay}: lr, eps, weight_decay >= 0 and 0 <= betas < 1"
        )
    return {key: made[key] for key in ("params", *_HYPER_KEYS)}


def _fusable(p: Tensor) -> bool:
    return p.dtype == torch.float32 and p.device.type == "cpu"


def _cuda_fusable(p: Tensor) -> bool:
    return p.device.type == "cuda" and p.dtype in (torch.float32, torch.bfloat16)
