"""Data-parallel helpers: the process's place in a ``torchrun`` job, device choice, collectives.

Launched by ``torchrun`` (or ``mmoe train --nproc N``), every process reads ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` from its environment and joins one process group: gloo on CPU,
NCCL on CUDA. Outside ``torchrun`` nothing here starts a process group and every helper is a
no-op on a single process.

Example:
    >>> ctx = DistContext()
    >>> ctx.enabled, ctx.is_main
    (False, True)
    >>> resolve_device("cpu")
    device(type='cpu')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from mmoe.errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a data-parallel run (defaults: a single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, evaluates and writes files."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """Whether this process was started by ``torchrun`` (its environment names a world)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def resolve_device(kind: str, local_rank: int = 0) -> torch.device:
    """``auto``: CUDA when present, else CPU; ``cuda``: this process's GPU, an error if none."""
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(
            "training.device is cuda but torch sees no CUDA device; use device: cpu or auto"
        )
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def init_distributed(device: torch.device) -> DistContext:
    """Join the ``torchrun`` process group (gloo on CPU, NCCL on CUDA); a no-op otherwise."""
    if not launched_by_torchrun():
        return DistContext()
    ctx = DistContext(
        rank=int(os.environ["RANK"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", 1)),
    )
    if ctx.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return ctx


def local_device(kind: str) -> torch.device:
    """The device of this process: under ``torchrun`` each process takes its local GPU.

    NCCL needs a GPU of its own for every process of a machine, so more local processes than
    GPUs is an error (for ``auto`` too: a silent fall-back to the CPU would hide the GPU).
    """
    device = resolve_device(kind, int(os.environ.get("LOCAL_RANK", 0)))
    local = int(os.environ.get("LOCAL_WORLD_SIZE", 1)) if launched_by_torchrun() else 1
    if device.type == "cuda" and local > torch.cuda.device_count():
        gpus = torch.cuda.device_count()
        raise ConfigError(
            f"{local} processes on this machine but torch sees {gpus} GPU(s), and each process "
            f"needs its own; use --nproc {gpus} or training.device: cpu"
        )
    return device


def shutdown(ctx: DistContext, completed: bool = False) -> None:
    """Leave the process group (at the end of a run, on every rank).

    After a ``completed`` run the ranks first meet at a barrier, so that they tear the group down
    together. Rank 0 evaluates and saves after the last step; without the barrier the other rank
    left while it did, and now and then aborted on exit ("terminate called without an active
    exception", gloo on CPU). After a failure there is no barrier: the other ranks may never
    reach it.
    """
    if ctx.enabled and dist.is_initialized():
        if completed:
            dist.barrier()
        dist.destroy_process_group()


def broadcast_object(ctx: DistContext, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (a small Python object such as an evaluation record)."""
    if not ctx.enabled:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(ctx: DistContext, flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is true on at least one rank (every rank gets the same answer)."""
    if not ctx.enabled:
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_reduce_sum(ctx: DistContext, tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over all ranks (in place; returned for convenience)."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


__all__ = [
    "DistContext",
    "all_reduce_sum",
    "any_rank",
    "broadcast_object",
    "init_distributed",
    "launched_by_torchrun",
    "local_device",
    "resolve_device",
    "shutdown",
]
