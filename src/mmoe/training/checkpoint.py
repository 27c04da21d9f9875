"""Checkpoints: everything a stopped run needs to continue exactly where it was.

A checkpoint is a folder (``RUN.partial/checkpoint/``) holding two kinds of file:

    state-<step>.safetensors   tensors: model weights, optimizer moments and step counts, the
                               best weights so far, the running loss, torch's RNG states
    trainer.json               plain values: step and epoch counters, the best record,
                               patience, history, optimizer hyper-parameters, NumPy's and
                               Python's RNG states, the batch source's state, and the name of
                               the tensor file it belongs to

The tensor file is written first under a new name, then ``trainer.json`` (atomically) points at
it, then older tensor files are removed. A process killed at any instant leaves a
``trainer.json`` naming a complete tensor file. Nothing is pickled.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import Tensor

from mmoe.errors import ArtifactError
from mmoe.io import prune, read_bytes, read_json, write_bytes, write_json

CHECKPOINT_FORMAT_VERSION = 1
STATE_FILE = "trainer.json"


def save_checkpoint(directory: Path, tensors: dict[str, Tensor], state: dict[str, Any]) -> Path:
    """Write one checkpoint into ``directory``; return the path of its tensor file."""
    name = f"state-{int(state['step']):09d}.safetensors"
    payload = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    write_bytes(directory / name, save_tensors(payload))
    write_json(
        directory / STATE_FILE,
        {"format_version": CHECKPOINT_FORMAT_VERSION, "tensors": name, **state},
    )
    prune(directory, "state-*.safetensors", keep=name)
    return directory / name


def has_checkpoint(directory: Path) -> bool:
    return (directory / STATE_FILE).is_file()


def load_checkpoint(directory: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read the checkpoint in ``directory``: its tensors (on the CPU) and its plain state."""
    state = read_json(directory / STATE_FILE)
    if not isinstance(state, dict) or state.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise ArtifactError(
            f"{directory / STATE_FILE} is not a checkpoint this mmoe can read; "
            "start the run again without --resume"
        )
    try:
        tensors = load_tensors(read_bytes(directory / state["tensors"]))
    except (SafetensorError, ValueError) as exc:
        raise ArtifactError(
            f"{directory / state['tensors']} is corrupt ({exc}); start again without --resume"
        ) from None
    return tensors, state


# ---- optimizer state: tensors to safetensors, the rest to JSON ---------------------------------


def split_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split a ``torch.optim``-format ``state_dict`` into named tensors and plain values."""
    tensors: dict[str, Tensor] = {}
    plain: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for index, values in state["state"].items():
        plain["state"][str(index)] = {}
        for key, value in values.items():
            if isinstance(value, Tensor):
                tensors[f"{index}.{key}"] = value
            else:
                plain["state"][str(index)][key] = value
    return tensors, plain


def join_optimizer_state(tensors: dict[str, Tensor], plain: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`split_optimizer_state`."""
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in plain["state"].items()}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    groups = [
        {k: tuple(v) if k == "betas" else v for k, v in group.items()}
        for group in plain["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


# ---- random number generators ------------------------------------------------------------------


def capture_rng() -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The states of torch's (CPU and CUDA), NumPy's and Python's global generators."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{i}"] = s
    name, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
    version, internal, gauss_next = random.getstate()
    plain = {
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss_next],
    }
    return tensors, plain


def restore_rng(tensors: dict[str, Tensor], plain: dict[str, Any]) -> None:
    """Put back the generator states :func:`capture_rng` returned."""
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda.{i}"] for i in range(len(tensors)) if f"cuda.{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    name, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = plain["python"]
    random.setstate((version, tuple(internal), gauss_next))


def prefixed(prefix: str, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """``{prefix.name: tensor}``."""
    return {f"{prefix}.{k}": v for k, v in tensors.items()}


def unprefixed(prefix: str, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """The tensors named ``prefix.*``, with the prefix removed."""
    start = len(prefix) + 1
    return {k[start:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


__all__ = [
    "STATE_FILE",
    "capture_rng",
    "has_checkpoint",
    "join_optimizer_state",
    "load_checkpoint",
    "prefixed",
    "restore_rng",
    "save_checkpoint",
    "split_optimizer_state",
    "unprefixed",
]
