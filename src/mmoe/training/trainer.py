"""The training loop: Adam over index-sliced batches, periodic evaluation, early stopping.

The loop keeps the host out of the hot path: batches are views of tensors shuffled once per
epoch, and losses are accumulated on the tensor side and read (``.item()``) only when evaluating.
It writes no files; ``on_evaluate`` receives each evaluation record (``mmoe.training.run`` writes
them to ``metrics.jsonl``).
"""

from __future__ import annotations

import math
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


@dataclass
class FitResult:
    """What :func:`fit` did. ``best`` is the evaluation record whose weights the model now holds."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    steps: int = 0
    stopped_early: bool = False


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
    """Train ``model`` in place and leave it holding the best evaluated weights.

    Args:
        model: the network; its initial weights are the caller's (seed before building it).
        train, valid: labelled batches holding the whole splits.
        tasks: task specs in the model's output order.
        config: the ``training:`` section (epochs, batch size, learning rate, patience, seed).
        monitor: ``(task, metric)`` whose validation value selects the best weights.
        progress: show a tqdm progress bar on stderr.
        on_evaluate: called with every evaluation record.

    Each record holds ``step``, ``epoch``, ``train_loss`` (per task, mean over the steps since
    the previous record) and ``valid`` (per-task metrics).
    """
    assert train.labels is not None and train.label_mask is not None
    task_names = [t.name for t in tasks]
    monitor_task, monitor_metric = monitor
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    loss_fn = MultiTaskLoss(tasks)
    n = len(train)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    eval_every = config.eval_every_steps or steps_per_epoch

    result = FitResult()
    best_state: dict[str, torch.Tensor] | None = None
    stale = 0
    running = torch.zeros(len(tasks))
    running_steps = 0
    bar = tqdm(total=total_steps, disable=not progress, unit="step", dynamic_ncols=True)
    model.train()
    try:
        for epoch in range(1, config.epochs + 1):
            shuffled = train.take(torch.randperm(n, generator=generator))
            for start in range(0, n, config.batch_size):
                batch = shuffled.slice(start, start + config.batch_size)
                logits, _ = model.compute(batch.categorical, batch.numeric)
                total, per_task = loss_fn(logits, batch.labels, batch.label_mask)
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                optimizer.step()
                running += per_task.detach()
                running_steps += 1
                result.steps += 1
                bar.update()
                if result.steps % eval_every and result.steps != total_steps:
                    continue
                train_loss = (running / running_steps).tolist()
                running.zero_()
                running_steps = 0
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
                }
                result.history.append(record)
                if on_evaluate is not None:
                    on_evaluate(record)
                score = record["valid"][monitor_task][monitor_metric]
                old = (
                    None
                    if result.best is None
                    else result.best["valid"][monitor_task][monitor_metric]
                )
                if is_better(monitor_metric, score, old):
                    result.best = record
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    stale = 0
                else:
                    stale += 1
                bar.set_postfix({f"{monitor_task} {monitor_metric}": f"{score:.4f}"})
                if progress:
                    bar.write(_summary(record, monitor_metric))
                if config.patience is not None and stale >= config.patience:
                    result.stopped_early = True
                    return result
        return result
    finally:
        bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)


def _summary(record: dict[str, Any], metric: str) -> str:
    losses = " ".join(f"{k} {v:.4f}" for k, v in record["train_loss"].items())
    scores = " ".join(f"{task} {_headline(m)}" for task, m in record["valid"].items())
    return f"step {record['step']} (epoch {record['epoch']})  train loss: {losses}  valid: {scores}"


def _headline(metrics: dict[str, float]) -> str:
    key = "auc" if "auc" in metrics else "rmse"
    return f"{key} {metrics[key]:.4f}"
