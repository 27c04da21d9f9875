"""The training loop: Adam over gathered batches, periodic evaluation, early stopping.

The loop keeps the host out of the hot path: each batch is one gather from tensors holding the
whole split (no per-sample ``Dataset``, no collation), and losses are accumulated on the tensor
side and read (``.item()``) only when evaluating. It writes no files; ``on_evaluate`` receives
each evaluation record (``mmoe.training.run`` writes them to ``metrics.jsonl``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from mmoe.config import TrainingConfig
from mmoe.data.batch import Batch
from mmoe.errors import MmoeError
from mmoe.features import TaskSpec
from mmoe.models.base import MultiTaskModel
from mmoe.training.evaluation import evaluate
from mmoe.training.losses import MultiTaskLoss
from mmoe.training.metrics import is_better
from mmoe.training.optim import make_adam


@dataclass
class FitResult:
    """What :func:`fit` did. ``best`` is the best evaluation record (by the monitored metric)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    steps: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0  # time in training steps, evaluation excluded


class _BestKeeper:
    """Remembers the best evaluation and its weights; says when patience has run out."""

    def __init__(self, task: str, metric: str, patience: int | None) -> None:
        self.task, self.metric, self.patience = task, metric, patience
        self.record: dict[str, Any] | None = None
        self.state: dict[str, torch.Tensor] | None = None
        self.stale = 0

    def score(self, record: dict[str, Any]) -> float:
        return record["valid"][self.task][self.metric]

    def update(self, record: dict[str, Any], model: MultiTaskModel) -> bool:
        """Keep ``record`` if it is the best so far; return whether training should stop."""
        old = None if self.record is None else self.score(self.record)
        if is_better(self.metric, self.score(record), old):
            self.record = record
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self.stale = 0
        else:
            self.stale += 1
        return self.patience is not None and self.stale >= self.patience


def fit(
    model: MultiTaskModel,
    train: Batch,
    valid: Batch,
    tasks: Sequence[TaskSpec],
    config: TrainingConfig,
    monitor: tuple[str, str],
    progress: bool = True,
    on_evaluate: Callable[[dict[str, Any]], None] | None = None,
) -> FitResult:
    """Train ``model`` in place; it ends holding the best evaluated weights (or the last ones).

    Args:
        model: the network; its initial weights are the caller's (seed before building it).
        train, valid: labelled batches holding the whole splits.
        tasks: task specs in the model's output order.
        config: the ``training:`` section (epochs, batch size, learning rate, patience, seed).
        monitor: ``(task, metric)`` whose validation value selects the best weights.
        progress: show a tqdm progress bar on stderr.
        on_evaluate: called with every evaluation record.

    Each record holds ``step``, ``epoch``, ``train_loss`` (per task, mean over the steps since
    the previous record), ``valid`` (per-task metrics), ``train_seconds`` (time spent in
    training steps so far, evaluation excluded) and ``samples_per_second`` (training throughput
    since the previous record).
    """
    assert train.labels is not None and train.label_mask is not None
    task_names = [t.name for t in tasks]
    generator = torch.Generator().manual_seed(config.seed)
    # One fused kernel for all parameters; the same updates as torch.optim.Adam(fused=True).
    optimizer = make_adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    loss_fn = MultiTaskLoss(tasks)
    complete = bool(train.label_mask.all())  # no missing label: the loss can skip its mask
    n = len(train)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    eval_every = config.eval_every_steps or steps_per_epoch

    result = FitResult()
    keeper = _BestKeeper(*monitor, config.patience)
    running = torch.zeros(len(tasks))  # summed per-task losses since the last record
    running_steps = running_rows = 0
    bar = tqdm(total=total_steps, disable=not progress, unit="step", dynamic_ncols=True)
    model.train()
    try:
        interval_start = time.perf_counter()
        for epoch in range(1, config.epochs + 1):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, config.batch_size):
                # Gathering each batch costs less memory than a shuffled copy of the whole split.
                batch = train.take(order[start : start + config.batch_size])
                logits, _ = model.compute(batch.categorical, batch.numeric)
                mask = None if complete else batch.label_mask
                total, per_task = loss_fn(logits, batch.labels, mask)
                optimizer.zero_grad()
                total.backward()
                optimizer.step()
                running += per_task.detach()
                running_steps += 1
                running_rows += len(batch)
                result.steps += 1
                bar.update()
                if result.steps % eval_every and result.steps != total_steps:
                    continue
                elapsed = time.perf_counter() - interval_start
                result.train_seconds += elapsed
                train_loss = (running / running_steps).tolist()
                if not all(math.isfinite(v) for v in train_loss):
                    raise MmoeError(
                        f"training diverged (loss is not finite at step {result.steps}); "
                        "lower training.learning_rate"
                    )
                record = {
                    "step": result.steps,
                    "epoch": epoch,
                    "train_loss": dict(zip(task_names, train_loss, strict=True)),
                    "valid": evaluate(model, valid, tasks),
                    "train_seconds": round(result.train_seconds, 4),
                    "samples_per_second": round(running_rows / elapsed, 1),
                }
                running.zero_()
                running_steps = running_rows = 0
                result.history.append(record)
                if on_evaluate is not None:
                    on_evaluate(record)
                stop = keeper.update(record, model)
                bar.set_postfix({f"{keeper.task} {keeper.metric}": f"{keeper.score(record):.4f}"})
                if progress:
                    bar.write(_summary(record))
                if stop:
                    result.stopped_early = True
                    return result
                interval_start = time.perf_counter()
        return result
    finally:
        bar.close()
        result.best = keeper.record
        if keeper.state is not None and config.restore_best:
            model.load_state_dict(keeper.state)


def _summary(record: dict[str, Any]) -> str:
    losses = " ".join(f"{k} {v:.4f}" for k, v in record["train_loss"].items())
    scores = " ".join(f"{task} {_headline(m)}" for task, m in record["valid"].items())
    return f"step {record['step']} (epoch {record['epoch']})  train loss: {losses}  valid: {scores}"


def _headline(metrics: dict[str, float]) -> str:
    key = "auc" if "auc" in metrics else "rmse"
    return f"{key} {metrics[key]:.4f}"
