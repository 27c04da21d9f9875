"""The run directory's format: which files a trained model is, how they are written and read.

Run directory layout (format version 2)::

    config.json         the run config, plus "format_version" and "mmoe_version"
    preprocessor.json   vocabularies, numeric statistics, feature and task specs
    model.safetensors   the weights; metadata: format version, architecture, task names in
                        output order, mmoe version
    metrics.json        validation/test metrics of the kept weights, written by training
    metrics.jsonl       one line per evaluation during training

Loading reads JSON and safetensors only: nothing is unpickled and no code in the directory runs.
Every file is written to a temporary name and renamed into place, so none is ever half-written,
and all get the same mode. Format history (each step is an explicit migration in ``MIGRATIONS``;
loading migrates in memory and never rewrites a run directory):

- 1: the first format (weights' metadata: format version and architecture only);
- 2: the weights' metadata names the tasks in output order, so a preprocessor.json or
  config.json with reordered tasks is caught on load.
``mmoe.predictor.TrainedModel`` is the object users hold; this module only reads and writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from mmoe.artifact_checks import feature_problems, task_problems, weight_problems
from mmoe.config import RunConfig, parse_config
from mmoe.data.preprocessor import Preprocessor
from mmoe.errors import ArtifactError, ConfigError
from mmoe.io import atomic_path, read_json, write_json
from mmoe.models.base import MultiTaskModel
from mmoe.models.ensemble import build_run_model

FORMAT_VERSION = 2
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "metrics.jsonl"


@dataclass
class RunFiles:
    """The raw contents of a run directory's three files, as read (before any parsing)."""

    config: dict[str, Any]
    preprocessor: dict[str, Any]
    weights_meta: dict[str, str]


def _from_version_1(files: RunFiles) -> RunFiles:
    """Version 1 → 2: the weights' metadata gains the task names in output order.

    Version 1 wrote config.json and model.safetensors from one model in one call, so the
    config's task order is the weights' order.
    """
    tasks = files.config.get("tasks")
    names = [t.get("name") for t in tasks] if isinstance(tasks, list) else []
    meta = {**files.weights_meta, "format_version": "2", "task_names": json.dumps(names)}
    return RunFiles({**files.config, "format_version": 2}, files.preprocessor, meta)


#: ``version → function`` turning that version's files into the next version's.
MIGRATIONS: dict[int, Callable[[RunFiles], RunFiles]] = {1: _from_version_1}


def migrate(files: RunFiles, where: Path) -> RunFiles:
    """Bring ``files`` to ``FORMAT_VERSION`` through the explicit migrations, one step at a time."""
    found = files.config.get("format_version")
    if not isinstance(found, int) or isinstance(found, bool) or found < 1:
        raise ArtifactError(f"{where / CONFIG_FILE} has no valid format_version ({found!r})")
    if found > FORMAT_VERSION:
        raise ArtifactError(
            f"{where} was written in run format {found} by a newer mmoe "
            f"({files.config.get('mmoe_version')}); this mmoe reads versions 1-{FORMAT_VERSION}: "
            "upgrade mmoe"
        )
    while files.config["format_version"] < FORMAT_VERSION:
        files = MIGRATIONS[files.config["format_version"]](files)
    return files


def save_run_files(
    run_dir: str | Path, config: RunConfig, preprocessor: Preprocessor, model: MultiTaskModel
) -> None:
    """Write ``config.json``, ``preprocessor.json`` and ``model.safetensors`` into ``run_dir``.

    All three get the same ordinary mode (0666 less the umask, 0644 usually).
    """
    run_dir = Path(run_dir)
    header = {"format_version": FORMAT_VERSION, "mmoe_version": version("mmoe")}
    write_json(run_dir / CONFIG_FILE, {**header, **config.model_dump(mode="json")})
    write_json(run_dir / PREPROCESSOR_FILE, preprocessor.to_dict())
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format_version": str(FORMAT_VERSION),
        "architecture": config.model.name,
        "task_names": json.dumps(list(model.task_names)),
        "mmoe_version": version("mmoe"),
    }
    with atomic_path(run_dir / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata=meta)


def load_run_files(run_dir: str | Path) -> tuple[RunConfig, Preprocessor, MultiTaskModel]:
    """Rebuild the config, preprocessor and network of a run directory (JSON + safetensors).

    Older format versions are migrated in memory (the files are not changed). The three files
    are checked against each other; every mismatch is one line of the ``ArtifactError``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ArtifactError(f"run directory not found: {run_dir}")
    raw = read_run_json(run_dir / CONFIG_FILE)
    if not isinstance(raw, dict):
        raise ArtifactError(f"{run_dir / CONFIG_FILE} is not a JSON object; retrain the model")
    weights = run_dir / WEIGHTS_FILE
    if not weights.is_file():
        read_run_json(weights)  # raises the "no such file" ArtifactError
    try:
        with safe_open(str(weights), framework="pt") as f:
            weights_meta = dict(f.metadata() or {})
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{weights} is corrupt ({exc}); retrain the model") from None
    pre_raw = read_run_json(run_dir / PREPROCESSOR_FILE)
    files = migrate(RunFiles(raw, pre_raw, weights_meta), run_dir)
    try:
        config = parse_config(files.config, origin=str(run_dir / CONFIG_FILE))
        preprocessor = Preprocessor.from_dict(files.preprocessor)
    except ArtifactError as exc:
        raise ArtifactError(f"{run_dir / PREPROCESSOR_FILE}: {exc}") from None
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{run_dir} holds an invalid config or preprocessor: {exc}") from None
    weights_tasks = json.loads(files.weights_meta.get("task_names", "null"))
    problems = task_problems(config, preprocessor.tasks, weights_tasks)
    problems += feature_problems(config.features, preprocessor.features)
    names = [t.name for t in preprocessor.tasks]
    model = build_run_model(config, preprocessor.input_spec(), names)
    if not problems:
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        categorical = [f.name for f in preprocessor.features.categorical]
        problems += weight_problems(expected, shapes, preprocessor.input_spec(), categorical)
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ArtifactError(
            f"{run_dir}: its files do not belong together ({len(problems)} "
            f"problem{'s' if len(problems) > 1 else ''}); retrain the model or restore the "
            f"files from one run:\n{lines}"
        )
    try:
        model.load_state_dict(load_file(str(weights)), strict=True)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ArtifactError(f"{weights} is corrupt ({first}); retrain the model") from None
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
    "MIGRATIONS",
    "PREPROCESSOR_FILE",
    "WEIGHTS_FILE",
    "RunFiles",
    "load_run_files",
    "migrate",
    "read_run_json",
    "save_run_files",
]
