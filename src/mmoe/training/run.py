"""``train(config)``: data → preprocessor → model → training → metrics → run directory.

A run directory is built under a temporary ``<out>.partial`` name and renamed into place only
when complete, so a directory named like a run is always a whole run; an interrupted or failed
run leaves its ``.partial`` directory (with ``metrics.jsonl`` so far) for inspection.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from mmoe.artifacts import HISTORY_FILE, METRICS_FILE, TrainedModel, write_json
from mmoe.config import RunConfig, load_config, parse_config
from mmoe.data.sources import load_splits
from mmoe.errors import ArtifactError
from mmoe.features import Preprocessor
from mmoe.models.registry import build_model
from mmoe.training.evaluation import evaluate
from mmoe.training.trainer import fit


@dataclass
class Run:
    """The outcome of :func:`train`: the trained model, its metrics and where it was saved.

    ``metrics`` holds ``valid`` and (when the data has a test split) ``test`` per-task metrics
    of the kept weights, the ``best`` evaluation record, ``monitor`` and timing figures.
    ``history`` is every evaluation record (as in ``metrics.jsonl``).
    """

    model: TrainedModel
    metrics: dict[str, Any]
    run_dir: Path | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def predict(self, data: Any) -> Any:
        """Shortcut for ``run.model.predict(data)``."""
        return self.model.predict(data)


def train(
    config: RunConfig | dict[str, Any] | str | Path,
    out_dir: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    progress: bool = True,
    overwrite: bool = False,
) -> Run:
    """Train the model a run config describes and return it with its metrics.

    Args:
        config: a ``RunConfig``, a mapping, or the path of a YAML config.
        out_dir: where to save the run directory; ``None`` keeps everything in memory.
        overrides: ``key.path=value`` strings applied to the config (like ``--set``).
        progress: show progress bars and per-evaluation lines on stderr.
        overwrite: replace an existing ``out_dir`` (only once the new run is complete).

    Example:
        >>> run = train({"data": {"source": "synthetic", "num_train": 500},
        ...              "training": {"epochs": 1}}, progress=False)
        >>> sorted(run.metrics["test"])
        ['y1', 'y2']
    """
    config = resolve_config(config, overrides)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and out.exists() and not overwrite:
        raise ArtifactError(f"{out} already exists; pass another --out or --overwrite")
    start = time.perf_counter()
    if config.training.num_threads is not None:
        torch.set_num_threads(config.training.num_threads)

    splits = load_splits(config.data)
    preprocessor = Preprocessor(config.features, config.tasks).fit(splits.train)
    # Encode every split before training, so a bad validation or test file fails fast.
    train_batch = preprocessor.transform(splits.train, labels=True)
    valid_batch = preprocessor.transform(splits.valid, labels=True)
    test_batch = None if splits.test is None else preprocessor.transform(splits.test, labels=True)
    prepared = time.perf_counter()

    torch.manual_seed(config.training.seed)
    task_names = [t.name for t in config.tasks]
    model = build_model(config.model, preprocessor.input_spec(), task_names)

    staging = None
    if out is not None:
        staging = out.with_name(out.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)

    def log(record: dict[str, Any]) -> None:
        if staging is not None:
            with open(staging / HISTORY_FILE, "a") as f:
                f.write(json.dumps(record) + "\n")

    monitor = (config.monitor().name, config.monitor_metric())
    result = fit(
        model, train_batch, valid_batch, config.tasks, config.training, monitor, progress, log
    )
    trained_at = time.perf_counter()
    metrics: dict[str, Any] = {
        "monitor": {"task": monitor[0], "metric": monitor[1]},
        "best": result.best,
        "steps": result.steps,
        "stopped_early": result.stopped_early,
        "valid": evaluate(model, valid_batch, config.tasks),
    }
    if test_batch is not None:
        metrics["test"] = evaluate(model, test_batch, config.tasks)
    metrics["seconds"] = {
        "prepare": round(prepared - start, 3),
        "train": round(trained_at - prepared, 3),
        "train_steps": round(result.train_seconds, 3),  # evaluation excluded
        "total": round(time.perf_counter() - start, 3),
    }
    trained = TrainedModel(config, preprocessor, model)
    if out is not None and staging is not None:
        trained.save(staging)
        write_json(staging / METRICS_FILE, metrics)
        _publish(staging, out)
    return Run(trained, metrics, out, result.history)


def resolve_config(
    config: RunConfig | dict[str, Any] | str | Path, overrides: list[str] | tuple[str, ...] = ()
) -> RunConfig:
    """A validated ``RunConfig`` from a config object, mapping or YAML path, with overrides."""
    if isinstance(config, str | Path):
        return load_config(config, overrides)
    if isinstance(config, RunConfig):
        if not overrides:
            return config
        config = config.model_dump(mode="json")
    return parse_config(config, overrides)


def default_run_dir(config: RunConfig, root: str | Path = "runs") -> Path:
    """``runs/<name or model>-<YYYYmmdd-HHMMSS>``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{config.name or config.model.name}-{stamp}"


def _publish(staging: Path, out: Path) -> None:
    """Move the complete run into place; an old run at ``out`` is removed only after that."""
    old = None
    if out.exists():
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
