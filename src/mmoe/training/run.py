"""``train(config)``: data → preprocessor → model → trainer → metrics → run directory.

A run directory is built under a temporary ``<out>.partial`` name and renamed into place only
when complete, so a directory named like a run is always a whole run. While training, the
staging directory holds ``metrics.jsonl`` so far and the last checkpoint (``checkpoint/``);
``resume=True`` (``mmoe train ... --resume``) continues from that checkpoint, and SIGINT or
SIGTERM write one before stopping. Under ``torchrun`` every rank trains and rank 0 alone writes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from mmoe.artifacts import HISTORY_FILE, METRICS_FILE, PREPROCESSOR_FILE
from mmoe.config import ParquetDatasetSource, RunConfig, load_config, parse_config, read_raw_config
from mmoe.data.checks import warn_undefined_metrics
from mmoe.data.preprocessor import Preprocessor
from mmoe.data.sources import load_splits
from mmoe.errors import ArtifactError, ConfigError, TrainingInterrupted
from mmoe.io import append_jsonl, read_json, write_json, write_jsonl
from mmoe.logs import enable_console_logging
from mmoe.models.ensemble import SeedEnsemble
from mmoe.models.registry import build_model
from mmoe.predictor import TrainedModel
from mmoe.provenance import PROVENANCE_FILE, data_fingerprint, environment
from mmoe.tracking import Tracker
from mmoe.training import checkpoint as ckpt
from mmoe.training.distributed import init_distributed, local_device, shutdown
from mmoe.training.ensemble import ensemble_metrics, member_configs
from mmoe.training.evaluation import evaluate
from mmoe.training.inputs import prepare_inputs
from mmoe.training.trainer import Trainer

log = logging.getLogger("mmoe.training")

CHECKPOINT_DIR = "checkpoint"
RUN_CONFIG_FILE = "run-config.json"  # the config a staging directory was started with


@dataclass
class Run:
    """The outcome of :func:`train`: the trained model, its metrics and where it was saved.

    ``metrics`` holds ``valid`` and (when the data has a test split) ``test`` per-task metrics
    of the kept weights, the ``best`` evaluation record, ``monitor`` and timing figures.
    ``history`` is every evaluation record (as in ``metrics.jsonl``). On ranks other than 0 of
    a data-parallel run, ``metrics`` is empty and ``run_dir`` is ``None``.
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
    resume: bool = False,
    data: Mapping[str, Any] | None = None,
) -> Run:
    """Train the model a run config describes and return it with its metrics.

    Args:
        config: a ``RunConfig``, a mapping, or the path of a YAML config (or a shipped
            config's name, e.g. ``"census/group1-mmoe"``).
        out_dir: where to save the run directory; ``None`` keeps everything in memory (and
            writes no checkpoint).
        overrides: ``key.path=value`` strings applied to the config (like ``--set``).
        progress: show a progress bar and per-evaluation lines on stderr.
        overwrite: replace an existing ``out_dir`` (only once the new run is complete).
        resume: continue from the last checkpoint in ``<out_dir>.partial``.
        data: tables in memory instead of the config's ``data:`` section: ``{"train": df,
            "valid": df, "test": df}`` with pandas DataFrames or pyarrow Tables (``valid`` and
            ``test`` optional). The config's ``data:`` section may then be left out.

    Example:
        >>> run = train({"data": {"source": "synthetic", "num_train": 500},
        ...              "training": {"epochs": 1}}, progress=False)
        >>> sorted(run.metrics["test"])
        ['y1', 'y2']
        >>> import pandas as pd
        >>> df = pd.DataFrame({"city": list("abcab") * 40, "clicked": [1, 0, 0, 1, 0] * 40})
        >>> cfg = {"features": {"categorical": ["city"]},
        ...        "tasks": [{"name": "click", "column": "clicked", "type": "binary"}],
        ...        "training": {"epochs": 1}}
        >>> train(cfg, data={"train": df}, progress=False).metrics["valid"]["click"]["rows"]
        20
    """
    if data is None and isinstance(config, Mapping):
        config, data = _tables_from_config(config)
    command = _resume_command(config, overrides, out_dir)
    config = resolve_config(config, overrides, in_memory=data is not None)
    if config.training.ensemble_size > 1:
        if data is not None:
            raise ConfigError(
                "a seed ensemble reads its data from the config; train it from files "
                "(data.source table) or train the members one by one"
            )
        return _train_ensemble(config, out_dir, progress, overwrite, resume)
    out = Path(out_dir) if out_dir is not None else None
    if resume and out is None:
        raise ArtifactError("resuming needs the run directory: pass --out RUN with --resume")
    if out is not None and out.exists() and not overwrite:
        raise ArtifactError(f"{out} already exists; pass another --out or --overwrite")
    staging = None if out is None else out.with_name(out.name + ".partial")
    if progress:
        enable_console_logging()
    start = time.perf_counter()
    device = local_device(config.training.device)
    dist = init_distributed(device)
    completed = False  # every rank got through the run: they leave the process group together
    if command is not None and dist.enabled:
        command += f" --nproc {dist.world_size}"
    try:
        _set_threads(config, dist.local_world_size, device)
        # Read at the start: the code and command that trained the run, not the checkout's
        # state when a long run ends.
        env = environment()
        checkpoint_dir = None if staging is None else staging / CHECKPOINT_DIR
        fitted = None
        if resume:
            assert staging is not None and checkpoint_dir is not None
            _check_resumable(staging, checkpoint_dir, config)
            fitted = Preprocessor.load(checkpoint_dir / PREPROCESSOR_FILE)
        inputs = prepare_inputs(config, fitted, dist, device, data)
        preprocessor, valid_batch, test_batch = inputs.preprocessor, inputs.valid, inputs.test
        valid_groups, test_groups = inputs.valid_groups, inputs.test_groups
        targets = preprocessor.target_stats_
        prepared = time.perf_counter()

        torch.manual_seed(config.training.seed)
        task_names = [t.name for t in config.tasks]
        model = build_model(config.model, preprocessor.input_spec(), task_names)
        if staging is not None and dist.is_main and not resume:
            shutil.rmtree(staging, ignore_errors=True)
            write_json(staging / RUN_CONFIG_FILE, config.model_dump(mode="json"))
            preprocessor.save(staging / CHECKPOINT_DIR / PREPROCESSOR_FILE)

        tracker = Tracker(
            config.training.log_to if dist.is_main else [],
            staging,
            config.model_dump(mode="json"),
            config.name or (out.name if out is not None else config.model.name),
            final_dir=out,
        )

        def log_record(record: dict[str, Any]) -> None:
            if staging is not None:
                append_jsonl(staging / HISTORY_FILE, record)
            tracker.log_evaluation(record)

        def log_step(step: int, losses: dict[str, float], lr: float) -> None:
            scalars = {f"train/{task}/loss_running": v for task, v in losses.items()}
            tracker.log_scalars({**scalars, "learning_rate": lr}, step)

        source = inputs.source
        monitor = (config.monitor().name, config.monitor_metric())
        trainer = Trainer(
            model,
            source,
            valid_batch,
            config.tasks,
            config.training,
            monitor,
            device=device,
            dist=dist,
            checkpoint_dir=checkpoint_dir,
            on_evaluate=log_record,
            on_log_step=log_step if config.training.log_to else None,
            progress=progress,
            target_stats=targets,
            valid_groups=valid_groups,
        )
        if resume:
            assert checkpoint_dir is not None and staging is not None
            trainer.resume(checkpoint_dir)
            if dist.is_main:  # drop records written after the checkpoint; they are redone
                write_jsonl(staging / HISTORY_FILE, trainer.state.history)
            if dist.is_main:
                log.info(f"resuming {staging} at step {trainer.state.step}")
        try:
            with _stop_on_signals(trainer, command):
                result = trainer.fit()
        finally:
            tracker.close()
        trained_at = time.perf_counter()
        model = trainer.model
        if not dist.is_main:
            completed = True
            return Run(TrainedModel(config, preprocessor, model), {}, None, result.history)
        metrics: dict[str, Any] = {
            "monitor": {"task": monitor[0], "metric": monitor[1]},
            "best": result.best,
            "steps": result.steps,
            "stopped_early": result.stopped_early,
            "valid": evaluate(
                model, valid_batch, config.tasks, target_stats=targets, groups=valid_groups
            ),
        }
        if test_batch is not None:
            metrics["test"] = evaluate(
                model, test_batch, config.tasks, target_stats=targets, groups=test_groups
            )
        for split in ("valid", "test"):
            warn_undefined_metrics(metrics.get(split, {}))
        metrics["seconds"] = {
            "prepare": round(prepared - start, 3),
            "train": round(trained_at - prepared, 3),
            "train_steps": round(result.train_seconds, 3),  # evaluation excluded
            "total": round(time.perf_counter() - start, 3),
        }
        metrics["world_size"] = dist.world_size
        metrics["device"] = str(device)
        trained = TrainedModel(config, preprocessor, model)
        if out is not None and staging is not None:
            trained.save(staging)
            write_json(staging / METRICS_FILE, metrics)
            fingerprint = data_fingerprint(config.data, inputs.rows)
            env["finished_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
            provenance = {"environment": env, "data": fingerprint}
            write_json(staging / PROVENANCE_FILE, provenance)
            _publish(staging, out)
        completed = True
        return Run(trained, metrics, out, result.history)
    finally:
        shutdown(dist, completed)


def _train_ensemble(
    config: RunConfig, out_dir: str | Path | None, progress: bool, overwrite: bool, resume: bool
) -> Run:
    """Train ``training.ensemble_size`` members (seeds ``seed + k``) and save one ensemble."""
    out = Path(out_dir) if out_dir is not None else None
    if resume:
        raise ArtifactError("a seed ensemble cannot be resumed; train it again without --resume")
    if out is not None and out.exists() and not overwrite:
        raise ArtifactError(f"{out} already exists; pass another --out or --overwrite")
    if os.environ.get("WORLD_SIZE", "1") != "1":
        raise ArtifactError("a seed ensemble trains in one process; drop --nproc or --seeds")
    if isinstance(config.data, ParquetDatasetSource):
        raise ConfigError(
            "a seed ensemble reads its splits into memory; use an in-memory data source or "
            "train the members one by one"
        )
    runs, members = [], member_configs(config)
    for k, member in enumerate(members):
        if progress:
            log.info(f"ensemble member {k + 1}/{len(members)} (seed {member.training.seed})")
        runs.append(train(member, progress=progress))
    preprocessor = runs[0].model.preprocessor
    model = SeedEnsemble([r.model.model for r in runs])
    splits = load_splits(config.data)
    targets = preprocessor.target_stats_

    def score(table: Any) -> dict[str, dict[str, float]]:
        batch = preprocessor.transform(table, labels=True)
        return evaluate(model, batch, config.tasks, target_stats=targets)

    valid = score(splits.valid)
    test = None if splits.test is None else score(splits.test)
    seeds = [m.training.seed for m in members]
    metrics = ensemble_metrics([r.metrics for r in runs], valid, test, seeds)
    trained = TrainedModel(config, preprocessor, model)
    if out is not None:
        staging = out.with_name(out.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        trained.save(staging)
        write_json(staging / METRICS_FILE, metrics)
        write_jsonl(staging / HISTORY_FILE, [h for r in runs for h in r.history])
        _publish(staging, out)
    return Run(trained, metrics, out, [h for r in runs for h in r.history])


def resolve_config(
    config: RunConfig | dict[str, Any] | str | Path,
    overrides: list[str] | tuple[str, ...] = (),
    in_memory: bool = False,
) -> RunConfig:
    """A validated ``RunConfig`` from a config object, mapping or YAML path, with overrides.

    ``in_memory``: the data comes as tables in Python, so the ``data:`` section becomes
    ``{source: memory}`` (keeping a table section's ``valid_fraction`` and ``split_seed``).
    """
    if in_memory:
        if isinstance(config, str | Path):
            raw = read_raw_config(config)[1]
        elif isinstance(config, RunConfig):
            raw = config.model_dump(mode="json")
        else:
            raw = dict(config)
        given = raw.get("data") if isinstance(raw.get("data"), dict) else {}
        kept = {k: given[k] for k in ("valid_fraction", "split_seed") if k in given}
        return parse_config({**raw, "data": {"source": "memory", **kept}}, overrides)
    if isinstance(config, str | Path):
        return load_config(config, overrides)
    if isinstance(config, RunConfig):
        if not overrides:
            return config
        config = config.model_dump(mode="json")
    return parse_config(config, overrides)


def _tables_from_config(
    config: Mapping[str, Any],
) -> tuple[Mapping[str, Any], dict[str, Any] | None]:
    """Tables given in place of paths (``data: {train: df}``) become ``data=`` tables."""
    section = config.get("data")
    if not isinstance(section, Mapping):
        return config, None
    tables = {
        k: v
        for k, v in section.items()
        if k in ("train", "valid", "test") and v is not None and not isinstance(v, str | Path)
    }
    if not tables:
        return config, None
    rest = {k: v for k, v in section.items() if k not in ("train", "valid", "test", "source")}
    return {**config, "data": rest}, tables


def default_run_dir(config: RunConfig, root: str | Path = "runs") -> Path:
    """``runs/<name or model>-<YYYYmmdd-HHMMSS>``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(root) / f"{config.name or config.model.name}-{stamp}"


def _set_threads(config: RunConfig, local_processes: int, device: torch.device) -> None:
    """Intra-op threads: the config's, else the cores shared among this machine's processes."""
    if config.training.num_threads is not None:
        torch.set_num_threads(config.training.num_threads)
    elif local_processes > 1 and device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_processes))


def _check_resumable(staging: Path, checkpoint_dir: Path, config: RunConfig) -> None:
    """A resumable staging directory holds a checkpoint of a run with this very config."""
    if not ckpt.has_checkpoint(checkpoint_dir):
        raise ArtifactError(f"no checkpoint to resume in {staging}; start the run without --resume")
    started = read_json(staging / RUN_CONFIG_FILE)
    if started != config.model_dump(mode="json"):
        changed = sorted(
            k for k in started if started.get(k) != config.model_dump(mode="json").get(k)
        )
        raise ArtifactError(
            f"{staging} was started with another config (differs in: {', '.join(changed)}); "
            "resume with the same config and --set values"
        )


def _resume_command(
    config: Any, overrides: list[str] | tuple[str, ...], out: str | Path | None
) -> str | None:
    """The shell command that resumes this run (``CONFIG`` stands for a config given as data)."""
    if out is None:
        return None
    source = shlex.quote(str(config)) if isinstance(config, str | Path) else "CONFIG"
    sets = "".join(f" --set {shlex.quote(item)}" for item in overrides)
    return f"mmoe train {source}{sets} --out {shlex.quote(str(out))} --resume"


@contextlib.contextmanager
def _stop_on_signals(trainer: Trainer, command: str | None) -> Iterator[None]:
    """SIGINT/SIGTERM ask the trainer to checkpoint and stop; the error says how to resume."""

    def request(signum: int, frame: Any) -> None:
        trainer.stop_signal = signum

    handled = (signal.SIGINT, signal.SIGTERM)
    try:
        previous = {s: signal.signal(s, request) for s in handled}
    except ValueError:  # not the main thread: signals cannot be caught here
        previous = {}
    try:
        yield
    except TrainingInterrupted as exc:
        where = "no checkpoint was written (no --out)"
        if command is not None:
            where = f"checkpoint written; resume with: {command}"
        raise TrainingInterrupted(f"{exc}; {where}", exc.exit_code) from None
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _publish(staging: Path, out: Path) -> None:
    """Move the complete run into place; an old run at ``out`` is removed only after that."""
    shutil.rmtree(staging / CHECKPOINT_DIR, ignore_errors=True)
    (staging / RUN_CONFIG_FILE).unlink(missing_ok=True)
    old = None
    if out.exists():
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
