"""The ``Trainer``: one object that owns a training run's state, for one process or many.

It holds the model, the loss, the optimizer and its schedule, the step and epoch counters, the
best-so-far record and patience, and it can write all of that — with the random generators'
states — to a checkpoint and continue from one exactly. Batches come from a batch source
(``mmoe.data.loaders``); the training step, evaluation, checkpointing and early stopping are
methods the loop calls.

The hot path stays as it was: a batch is one gather from tensors holding the split, losses are
accumulated on the tensor side and read (``.item()``) only when evaluating, and the model's own
``forward`` is called (through ``DistributedDataParallel`` when several processes train).

Single process::

    mmoe train configs/census/group1-mmoe.yaml --set data.data_dir=DIR --out runs/g1

Several processes on one machine (each rank trains on its share of every global batch)::

    torchrun --standalone --nproc_per_node=2 -m mmoe train CONFIG --out runs/g1
    mmoe train CONFIG --out runs/g1 --nproc 2          # the same, launched for you
"""

from __future__ import annotations

import gc
import inspect
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from mmoe.config import TrainingConfig
from mmoe.data.batch import Batch
from mmoe.data.loaders import BatchSource, InMemorySource, TrainBatch
from mmoe.errors import ArtifactError, MmoeError, TrainingInterrupted
from mmoe.gates.stats import GateStats, find_problems, gate_health
from mmoe.models.base import MultiTaskModel
from mmoe.specs import TaskSpec
from mmoe.training import checkpoint as ckpt
from mmoe.training.distributed import DistContext, all_reduce_sum, any_rank, broadcast_object
from mmoe.training.early_stopping import BestKeeper
from mmoe.training.evaluation import LabelledStream, evaluate_with_gates
from mmoe.training.losses import MultiTaskLoss
from mmoe.training.optim import load_optimizer_state, make_optimizer
from mmoe.training.schedule import lr_factor, set_learning_rate
from mmoe.training.state import FitResult, TrainState
from mmoe.training.weighting import make_weighting

log = logging.getLogger("mmoe.training")

#: The DDP keyword that stops the broadcast of buffers before every forward; newer torch renamed it.
_NO_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
    else {"broadcast_buffers": False}
)

#: Under data parallelism the ranks agree every this many steps whether a stop was requested.
STOP_SYNC_STEPS = 10


class Trainer:
    """Trains a multi-task model from a batch source, with evaluation, checkpoints, early stop.

    Args:
        model: the network, with its initial weights (seed before building it).
        source: the training batches (:class:`mmoe.data.loaders.InMemorySource` by default).
        valid: the labelled validation split (any device; evaluated in large slices), or a
            stream of labelled batches (``mmoe.data.streaming.EvalStream``).
        tasks: task specs in the model's output order.
        config: the ``training:`` section.
        monitor: ``(task, metric)`` whose validation value selects the best weights.
        device: where the model trains; the source's tensors must live there too.
        dist: this process's place in a data-parallel run.
        checkpoint_dir: where checkpoints go (rank 0 writes); ``None``: no checkpoints.
        on_evaluate: called on rank 0 with every evaluation record (e.g. to log it to a file).
        on_log_step: called on rank 0 every ``config.log_every_steps`` steps with the step, the
            running training loss per task and the learning rate (for experiment trackers).
        progress: show a progress bar and per-evaluation log lines (rank 0 only).
        target_stats: the preprocessor's ``target_stats_``: validation metrics of standardised
            regression tasks are reported in the target's own unit.
        valid_groups: ``(N,)`` group key of every validation row (``metrics.group_by``): binary
            tasks also report the grouped AUC.

    Example:
        >>> from mmoe.config import TrainingConfig
        >>> from mmoe.data.loaders import InMemorySource
        >>> from mmoe.models import MMoE
        >>> from mmoe.specs import InputSpec
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(256, 4, generator=g)
        >>> split = Batch(torch.zeros(256, 0, dtype=torch.long), x,
        ...               (x[:, :1] > 0).float(), torch.ones(256, 1, dtype=torch.bool))
        >>> task = TaskSpec(name="y", column="y", type="binary")
        >>> trainer = Trainer(MMoE(InputSpec((), (), 4), ["y"], num_experts=2),
        ...                   InMemorySource(split, batch_size=32, seed=0), split, [task],
        ...                   TrainingConfig(epochs=3, learning_rate=0.05), ("y", "auc"),
        ...                   progress=False)
        >>> result = trainer.fit()
        >>> result.steps, result.best["valid"]["y"]["auc"] > 0.95
        (24, True)
    """

    def __init__(
        self,
        model: MultiTaskModel,
        source: BatchSource,
        valid: Batch | LabelledStream,
        tasks: Sequence[TaskSpec],
        config: TrainingConfig,
        monitor: tuple[str, str],
        *,
        device: torch.device | None = None,
        dist: DistContext | None = None,
        checkpoint_dir: Path | None = None,
        on_evaluate: Callable[[dict[str, Any]], None] | None = None,
        on_log_step: Callable[[int, dict[str, float], float], None] | None = None,
        progress: bool = True,
        target_stats: dict[str, dict[str, float]] | None = None,
        valid_groups: np.ndarray | None = None,
    ) -> None:
        self.device = device or torch.device("cpu")
        self.dist = dist or DistContext()
        self.model = model.to(self.device)
        # DDP synchronises gradients inside backward; the optimizer updates the same parameters.
        self.module: torch.nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # The model's buffers (embedding offsets) are constants: broadcasting them before
            # every forward, DDP's default, cost a quarter of a 2-process CPU step.
            self.module = DistributedDataParallel(self.model, device_ids=ids, **_NO_BUFFER_SYNC)
        self.source, self.valid, self.tasks = source, valid, list(tasks)
        self.config, self.monitor = config, monitor
        self.checkpoint_dir, self.on_evaluate = checkpoint_dir, on_evaluate
        self.on_log_step = on_log_step
        # Rank 0 reports the running loss every log_every steps (None: never; no host sync).
        self.log_every = config.log_every_steps if on_log_step and self.dist.is_main else None
        self.progress = progress and self.dist.is_main
        self.target_stats, self.valid_groups = target_stats, valid_groups
        self.loss_fn = MultiTaskLoss(tasks).to(self.device)
        # None for the default fixed weighting: the training step then runs as it always did.
        self.weighting = make_weighting(
            config.task_weighting,
            self.tasks,
            self.model.shared_layer_weight(),
            shared_rows=self.model.shared_layer_rows(),
            dwa_temperature=config.dwa_temperature,
            gradnorm_alpha=config.gradnorm_alpha,
            world_size=self.dist.world_size,
        )
        params: Any = self.model.parameters()
        if self.weighting is not None:
            self.weighting.to(self.device)
            learned = list(self.weighting.parameters())
            if learned:  # learned task weights: their own group, without weight decay
                params = [
                    {"params": list(self.model.parameters())},
                    {"params": learned, "weight_decay": 0.0},
                ]
        self.optimizer = make_optimizer(
            config.optimizer,
            params,
            lr=config.learning_rate,
            weight_decay=config.weight_decay,
        )
        self.base_lrs = [group["lr"] for group in self.optimizer.param_groups]
        self.scheduled = config.lr_schedule != "constant" or config.warmup_steps > 0
        if self.scheduled and source.steps_per_epoch is None:
            raise MmoeError(
                "training.lr_schedule needs a data source of known length; use constant"
            )
        self.keeper = BestKeeper(*monitor, config.patience)
        self.state = TrainState()
        self.running = torch.zeros(len(self.tasks), device=self.device)  # summed task losses
        self.stop_signal: int | None = None  # set by a signal handler: stop at the next step
        self._interval_start = time.perf_counter()  # start of the current timing interval
        self._gate_warnings: set[tuple[str, int, str]] = set()  # each problem is logged once

    # ---- the loop ------------------------------------------------------------------------------

    @property
    def total_steps(self) -> int | None:
        per_epoch = self.source.steps_per_epoch
        return None if per_epoch is None else self.config.epochs * per_epoch

    @property
    def eval_every(self) -> int | None:
        return self.config.eval_every_steps or self.source.steps_per_epoch

    def fit(self) -> FitResult:
        """Train until the last epoch, early stopping, or a stop signal; return what happened.

        The model ends holding the best evaluated weights (``training.restore_best``, the
        default) or the last ones. A stop signal writes a checkpoint and raises
        :class:`mmoe.errors.TrainingInterrupted`.
        """
        state = self.state
        bar = tqdm(
            total=self.total_steps,
            initial=state.step,
            disable=not self.progress,
            unit="step",
            dynamic_ncols=True,
        )
        self.model.train()
        # Everything alive now (modules, data, the model) lives through training: freezing it
        # keeps the garbage collector's full passes from walking it again and again. Such a
        # pass, triggered mid-epoch, cost ~0.1 s (a sixth of a census benchmark epoch).
        gc.collect()
        gc.freeze()
        # A resumed run carries on timing the interval its checkpoint was written in.
        self._interval_start = time.perf_counter() - state.interval_seconds
        try:
            while not state.finished and state.epoch <= self.config.epochs:
                self._epoch(bar)
            state.finished = True
        finally:
            gc.unfreeze()
            bar.close()
        if self.keeper.state is not None and self.config.restore_best:
            self.model.load_state_dict(self.keeper.state)
        return FitResult(
            history=state.history,
            best=self.keeper.record,
            steps=state.step,
            stopped_early=state.stopped_early,
            train_seconds=state.train_seconds,
        )

    def _epoch(self, bar: tqdm) -> None:
        state = self.state
        every, total = self.eval_every, self.total_steps
        checkpoint_every = self.config.checkpoint_every_steps
        for part in self.source.epoch(state.epoch, start_step=state.epoch_step):
            self.train_step(part)
            bar.update()
            step = state.step
            if self.log_every and step % self.log_every == 0:
                self._log_step()
            evaluated = stop = False
            if (every is not None and step % every == 0) or step == total:
                stop = self.evaluation_step()
                evaluated = True
            if stop:
                state.stopped_early = state.finished = True
            if evaluated or (checkpoint_every and step % checkpoint_every == 0):
                self.save_checkpoint()
            if stop:
                return
            self._check_stop_signal()
        if total is None and state.running_steps:  # a stream of unknown length: evaluate its end
            if self.evaluation_step():
                state.stopped_early = state.finished = True
            self.save_checkpoint()
        if self.weighting is not None:
            self.weighting.end_epoch(self.dist)
        state.epoch += 1
        state.epoch_step = 0

    def train_step(self, part: TrainBatch) -> None:
        """One optimizer update on this rank's part of a global batch."""
        state, batch = self.state, part.batch
        if self.scheduled:
            assert self.total_steps is not None
            factor = lr_factor(
                state.step, self.total_steps, self.config.lr_schedule, self.config.warmup_steps
            )
            set_learning_rate(self.optimizer, self.base_lrs, factor)
        logits = self.module(batch.categorical, batch.numeric)
        mask = batch.label_mask if self.source.has_missing_labels else None
        if batch.weights is not None:  # data.weight_column: weighted means
            counts = None if part.label_counts is None else part.label_counts.to(self.device)
            total, per_task = self.loss_fn(logits, batch.labels, mask, counts, batch.weights)
            if counts is not None:
                total = total * self.dist.world_size
        elif part.label_counts is None:  # one process: plain means over the batch
            total, per_task = self.loss_fn(logits, batch.labels, mask)
        else:
            # This rank's share of the global batch's mean loss. DDP averages gradients over
            # the ranks, so scaling by the world size makes their sum the global gradient.
            counts = part.label_counts if mask is not None else _full(part, len(self.tasks))
            total, per_task = self.loss_fn(logits, batch.labels, mask, counts.to(self.device))
            total = total * self.dist.world_size
        if self.weighting is None:
            self.optimizer.zero_grad()
            total.backward()
            self.optimizer.step()
        else:
            self._weighted_update(per_task)
        self.running += per_task.detach()
        state.step += 1
        state.epoch_step += 1
        state.running_steps += 1
        state.running_rows += part.global_rows

    def _weighted_update(self, per_task: Tensor) -> None:
        """The optimizer update of a learned or dynamic task weighting (not ``fixed``)."""
        assert self.weighting is not None
        total = self.weighting.combine(per_task, scale=float(self.dist.world_size))
        self.optimizer.zero_grad()
        total.backward()
        if self.dist.enabled:  # DDP syncs the model's gradients only: average the weights' too
            for p in self.weighting.parameters():
                if p.grad is not None:
                    p.grad = all_reduce_sum(self.dist, p.grad) / self.dist.world_size
        self.weighting.before_step()
        self.optimizer.step()
        self.weighting.after_step()

    def _log_step(self) -> None:
        """Report the running training loss (a host sync: only every log_every_steps)."""
        assert self.on_log_step is not None
        loss = (self.running / max(self.state.running_steps, 1)).tolist()
        names = [t.name for t in self.tasks]
        lr = self.optimizer.param_groups[0]["lr"]
        self.on_log_step(self.state.step, dict(zip(names, loss, strict=True)), lr)

    def evaluation_step(self) -> bool:
        """Evaluate on the validation split, log, keep the best; return whether to stop."""
        state = self.state
        elapsed = time.perf_counter() - self._interval_start
        state.train_seconds += elapsed
        # Each rank's per-task loss is its share of the global mean: the sum is the mean.
        running = all_reduce_sum(self.dist, self.running.clone())
        train_loss = (running / max(state.running_steps, 1)).tolist()
        if not all(math.isfinite(v) for v in train_loss):
            raise MmoeError(
                f"training diverged (loss is not finite at step {state.step}); "
                "lower training.learning_rate"
            )
        record = None
        if self.dist.is_main:
            valid, gates = evaluate_with_gates(
                self.model,
                self.valid,
                self.tasks,
                target_stats=self.target_stats,
                groups=self.valid_groups,
            )
            record = {
                "step": state.step,
                "epoch": state.epoch,
                "train_loss": dict(zip([t.name for t in self.tasks], train_loss, strict=True)),
                "valid": valid,
                "train_seconds": round(state.train_seconds, 4),
                "samples_per_second": round(state.running_rows / max(elapsed, 1e-9), 1),
                "learning_rate": self.optimizer.param_groups[0]["lr"],
            }
            if self.weighting is not None:
                record["task_weighting"] = self.weighting.record()
            if gates is not None:
                record["gates"] = gate_health(gates, self.model.gate_rows)
                self._warn_gate_problems(gates, record["step"])
        record = broadcast_object(self.dist, record)  # every rank decides the same way
        self.running.zero_()
        state.running_steps = state.running_rows = 0
        state.history.append(record)
        if self.on_evaluate is not None and self.dist.is_main:
            self.on_evaluate(record)
        stop = self.keeper.update(record, self.model)
        if self.progress:
            log.info(_summary(record))
        self._interval_start = time.perf_counter()
        return stop

    def _warn_gate_problems(self, gates: GateStats, step: int) -> None:
        """Log each dead expert and polarised gate the first time an evaluation finds it."""
        for problem in find_problems(gates, self.model.gate_rows, self.model.expert_names):
            if problem.key not in self._gate_warnings:
                self._gate_warnings.add(problem.key)
                log.warning(f"step {step}: {problem.message}")

    def _check_stop_signal(self) -> None:
        """Checkpoint and raise if a stop signal arrived (on any rank, under DDP)."""
        requested = self.stop_signal is not None
        if self.dist.enabled:
            if self.state.step % STOP_SYNC_STEPS:
                return
            requested = any_rank(self.dist, requested, self.device)
        if not requested:
            return
        self.save_checkpoint()
        signum = self.stop_signal or 15
        raise TrainingInterrupted(
            f"stopped by signal {signum} at step {self.state.step}",
            exit_code=128 + signum,
        )

    # ---- checkpoints ---------------------------------------------------------------------------

    def state_dict(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Everything needed to continue: named tensors and plain (JSON) values."""
        self.state.interval_seconds = time.perf_counter() - self._interval_start
        opt_tensors, opt_plain = ckpt.split_optimizer_state(self.optimizer.state_dict())
        best_tensors, best_plain = self.keeper.state_dict()
        rng_tensors, rng_plain = ckpt.capture_rng()
        tensors = {
            **ckpt.prefixed("model", self.model.state_dict()),
            **ckpt.prefixed("optimizer", opt_tensors),
            **ckpt.prefixed("best", best_tensors),
            **ckpt.prefixed("rng", rng_tensors),
            "running_loss": self.running,
        }
        if self.weighting is not None:
            tensors.update(ckpt.prefixed("weighting", self.weighting.state_dict()))
        plain = {
            **self.state.__dict__,
            "world_size": self.dist.world_size,
            "optimizer": opt_plain,
            "keeper": best_plain,
            "rng": rng_plain,
            "source": self.source.state_dict(),
        }
        return tensors, plain

    def load_state_dict(self, tensors: dict[str, Tensor], plain: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (or a checkpoint); the inverse of it."""
        if plain["world_size"] != self.dist.world_size:
            raise ArtifactError(
                f"the checkpoint was written by {plain['world_size']} process(es); resume it "
                f"with the same number (this run has {self.dist.world_size})"
            )
        if plain["source"] != self.source.state_dict():
            raise ArtifactError(
                "the checkpoint's batch order does not match this run's data settings "
                f"({plain['source']} vs {self.source.state_dict()}); resume with the same config"
            )
        self.model.load_state_dict(ckpt.unprefixed("model", tensors))
        optimizer_state = ckpt.join_optimizer_state(
            ckpt.unprefixed("optimizer", tensors), plain["optimizer"]
        )
        load_optimizer_state(self.optimizer, optimizer_state)
        best = {k: v.to(self.device) for k, v in ckpt.unprefixed("best", tensors).items()}
        self.keeper.load_state_dict(best, plain["keeper"])
        self.running.copy_(tensors["running_loss"])
        if self.weighting is not None:
            self.weighting.load_state_dict(ckpt.unprefixed("weighting", tensors))
        counters = {k: plain[k] for k in TrainState.__dataclass_fields__}
        self.state = TrainState(**counters)
        ckpt.restore_rng(ckpt.unprefixed("rng", tensors), plain["rng"])

    def save_checkpoint(self) -> None:
        """Write a checkpoint (rank 0, when a checkpoint directory is set)."""
        if self.checkpoint_dir is None or not self.dist.is_main:
            return
        tensors, plain = self.state_dict()
        ckpt.save_checkpoint(self.checkpoint_dir, tensors, plain)

    def resume(self, directory: Path) -> None:
        """Load the checkpoint in ``directory`` (every rank reads the same one)."""
        self.load_state_dict(*ckpt.load_checkpoint(directory))


def fit(
    model: MultiTaskModel,
    train: Batch,
    valid: Batch,
    tasks: Sequence[TaskSpec],
    config: TrainingConfig,
    monitor: tuple[str, str],
    progress: bool = True,
) -> FitResult:
    """Train ``model`` in place on whole in-memory splits, in one process, on its device.

    The shortest way to a :class:`Trainer` (no checkpoints); what the benchmarks call.
    """
    source = InMemorySource(train, config.batch_size, config.seed)
    device = next(model.parameters()).device
    trainer = Trainer(
        model, source, valid, tasks, config, monitor, device=device, progress=progress
    )
    return trainer.fit()


def _full(part: TrainBatch, num_tasks: int) -> Tensor:
    return torch.full((num_tasks,), float(part.global_rows))


def _summary(record: dict[str, Any]) -> str:
    losses = " ".join(f"{k} {v:.4f}" for k, v in record["train_loss"].items())
    scores = " ".join(f"{task} {_headline(m)}" for task, m in record["valid"].items())
    line = f"step {record['step']} (epoch {record['epoch']})  train loss: {losses}  valid: {scores}"
    if "task_weighting" in record:
        weights = record["task_weighting"]["weights"]
        line += "  task weights: " + " ".join(f"{k} {v:.3f}" for k, v in weights.items())
    return line


def _headline(metrics: dict[str, float]) -> str:
    key = "auc" if "auc" in metrics else "rmse"
    value = metrics[key]
    return f"{key} {value:.4f}" if value is not None else f"{key} -"
