"""The run directory's format: which files a trained model is, how they are written and read.

Run directory layout (format version 1)::

    config.json         the run config, plus "format_version" and "mmoe_version"
    preprocessor.json   vocabularies, numeric statistics, feature and task specs
    model.safetensors   the weights (tensors only; metadata carries the format version)
    metrics.json        validation/test metrics of the kept weights, written by training
    metrics.jsonl       one line per evaluation during training

Loading reads JSON and safetensors only: nothing is unpickled and no code in the directory runs.
Every file is written to a temporary name and renamed into place, so none is ever half-written.
``mmoe.predictor.TrainedModel`` is the object users hold; this module only reads and writes.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from mmoe.config import RunConfig, parse_config
from mmoe.data.preprocessor import Preprocessor
from mmoe.errors import ArtifactError, ConfigError
from mmoe.io import atomic_path, read_json, write_json
from mmoe.models.base import MultiTaskModel
from mmoe.models.ensemble import build_run_model

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "metrics.jsonl"


def save_run_files(
    run_dir: str | Path, config: RunConfig, preprocessor: Preprocessor, model: MultiTaskModel
) -> None:
    """Write ``config.json``, ``preprocessor.json`` and ``model.safetensors`` into ``run_dir``."""
    run_dir = Path(run_dir)
    header = {"format_version": FORMAT_VERSION, "mmoe_version": version("mmoe")}
    write_json(run_dir / CONFIG_FILE, {**header, **config.model_dump(mode="json")})
    write_json(run_dir / PREPROCESSOR_FILE, preprocessor.to_dict())
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format_version": str(FORMAT_VERSION), "architecture": config.model.name}
    with atomic_path(run_dir / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata=meta)


def load_run_files(run_dir: str | Path) -> tuple[RunConfig, Preprocessor, MultiTaskModel]:
    """Rebuild the config, preprocessor and network of a run directory (JSON + safetensors)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ArtifactError(f"run directory not found: {run_dir}")
    raw = read_run_json(run_dir / CONFIG_FILE)
    if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
        found = raw.get("format_version") if isinstance(raw, dict) else None
        raise ArtifactError(
            f"{run_dir / CONFIG_FILE}: format version {found!r} is not supported "
            f"(this mmoe reads version {FORMAT_VERSION})"
        )
    try:
        config = parse_config(raw, origin=str(run_dir / CONFIG_FILE))
        preprocessor = Preprocessor.from_dict(read_run_json(run_dir / PREPROCESSOR_FILE))
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{run_dir} holds an invalid config or preprocessor: {exc}") from None
    weights = run_dir / WEIGHTS_FILE
    if not weights.is_file():
        read_run_json(weights)  # raises the "no such file" ArtifactError
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{weights} is corrupt ({exc}); retrain the model") from None
    names = [t.name for t in preprocessor.tasks]
    model = build_run_model(config, preprocessor.input_spec(), names)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ArtifactError(f"{weights} does not match {CONFIG_FILE}: {first}") from None
    return config, preprocessor, model


def read_run_json(path: Path) -> Any:
    """Read a JSON file of a run directory, or raise one ``ArtifactError`` line with the fix."""
    if not path.is_file():
        raise ArtifactError(
            f"{path.parent} has no {path.name}: not a complete mmoe run directory "
            "(was training interrupted?); retrain with `mmoe train`"
        )
    try:
        return read_json(path)
    except ArtifactError as exc:
        raise ArtifactError(f"{exc}; retrain the model") from None


__all__ = [
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "HISTORY_FILE",
    "METRICS_FILE",
    "PREPROCESSOR_FILE",
    "WEIGHTS_FILE",
    "load_run_files",
    "read_run_json",
    "save_run_files",
]
