"""Task weighting: how the per-task losses ``L_k`` are combined into the loss that trains.

``training.task_weighting`` picks one strategy:

- ``fixed`` (default): ``Σ_k weight_k · L_k`` with the task specs' ``weight``. It lives in
  :class:`mmoe.training.losses.MultiTaskLoss` and needs no object here (:func:`make_weighting`
  returns ``None``), so the default training step does exactly what it always did.
- ``uncertainty`` (Kendall, Gal and Cipolla, CVPR 2018): a learned log-variance
  ``s_k = log σ_k²`` per task; the loss is ``Σ_k c_k·exp(-s_k)·L_k + ½·s_k`` with ``c_k = ½``
  for regression (Gaussian likelihood) and ``1`` for binary tasks (their eqs. 7 and 10). At the
  optimum ``σ_k² = L_k`` (regression) or ``2·L_k`` (binary): a noisier task gets less weight.
- ``dwa``, dynamic weight average (Liu, Johns and Davison, CVPR 2019, eq. 1):
  ``λ_k(t) = K·softmax_k(r_k(t-1) / T)`` with ``r_k(t-1) = L_k(t-1) / L_k(t-2)`` the ratio of the
  task's mean training loss over the last two epochs and temperature ``T``
  (``training.dwa_temperature``, 2 in the paper); ``λ = 1`` in the first two epochs. A task
  whose loss falls slowly gets more weight.
- ``gradnorm`` (Chen et al., ICML 2018): learned weights ``w_k`` (starting at 1, renormalised to
  sum to ``K`` after every step) trained to make the gradient norms ``G_k = ‖∇_W w_k L_k‖`` of
  the last shared layer ``W`` equal ``mean(G)·r_k^α``, where ``r_k`` is the task's relative
  inverse training rate ``(L_k / L_k(0)) / mean_j(L_j / L_j(0))`` and ``α`` is
  ``training.gradnorm_alpha`` (1.5 by default). ``w`` follows only the gradient of
  ``Σ_k |G_k - target_k|`` (targets held constant); the network follows ``Σ_k w_k L_k``.

The task specs' ``weight`` multiplies ``L_k`` before every strategy. Learned weights are
parameters: they join the optimizer (without weight decay), and every strategy's state (learned
weights, loss history, initial losses) is a tensor of the module's ``state_dict``, saved in
checkpoints, so a resumed run continues bit for bit. The effective weight of every task is
logged with each evaluation (``task_weighting`` in ``metrics.jsonl``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mmoe.errors import ConfigError
from mmoe.specs import TaskSpec
from mmoe.training.distributed import DistContext, all_reduce_sum

STRATEGIES = ("fixed", "uncertainty", "dwa", "gradnorm")


class TaskWeighting(nn.Module):
    """A strategy that turns per-task losses ``(T,)`` into the loss to minimise.

    The trainer calls :meth:`combine` on every step (before ``backward``), :meth:`before_step`
    between ``backward`` and the optimizer step, :meth:`after_step` after it, and
    :meth:`end_epoch` at the end of every epoch.

    Args:
        tasks: the task specs, in model output order (their ``weight`` multiplies each loss).
    """

    strategy: str = "fixed"

    def __init__(self, tasks: Sequence[TaskSpec]) -> None:
        super().__init__()
        self.task_names = [t.name for t in tasks]
        static = torch.tensor([t.weight for t in tasks], dtype=torch.float32)
        self.register_buffer("static", static, persistent=False)

    def combine(self, per_task: Tensor, scale: float = 1.0) -> Tensor:
        """The loss to back-propagate from this rank's per-task losses ``(T,)``.

        ``scale`` multiplies the data term (the world size under data parallelism, where each
        rank's ``per_task`` is its share of the global mean); parameter-only terms are not
        scaled, so the averaged gradient of every rank is the gradient of the global loss.
        """
        raise NotImplementedError

    def before_step(self) -> None:
        """Called after ``backward``, before the optimizer step."""

    def after_step(self) -> None:
        """Called after the optimizer step."""

    def end_epoch(self, dist: DistContext) -> None:
        """Called at the end of every training epoch (on every rank)."""

    def weights(self) -> Tensor:
        """The effective weight ``(T,)`` of every task's loss now."""
        raise NotImplementedError

    def record(self) -> dict[str, Any]:
        """What an evaluation record logs: the strategy and each task's effective weight."""
        values = self.weights().detach().cpu().tolist()
        return {
            "strategy": self.strategy,
            "weights": dict(zip(self.task_names, values, strict=True)),
        }


class UncertaintyWeighting(TaskWeighting):
    """Learned homoscedastic uncertainty per task (Kendall et al., CVPR 2018).

    Example:
        >>> tasks = [TaskSpec(name="a", column="a", type="regression"),
        ...          TaskSpec(name="b", column="b", type="binary")]
        >>> weighting = UncertaintyWeighting(tasks)
        >>> weighting.combine(torch.tensor([2.0, 0.5])).item()  # s = 0: ½·2 + 1·0.5
        1.5
    """

    strategy = "uncertainty"

    def __init__(self, tasks: Sequence[TaskSpec]) -> None:
        super().__init__(tasks)
        factor = torch.tensor([0.5 if t.type == "regression" else 1.0 for t in tasks])
        self.register_buffer("factor", factor, persistent=False)
        self.log_variance = nn.Parameter(torch.zeros(len(tasks)))  # s_k = log σ_k²

    def combine(self, per_task: Tensor, scale: float = 1.0) -> Tensor:
        precision = self.factor * torch.exp(-self.log_variance)  # (T,)
        data = (precision * self.static * per_task).sum()
        return data * scale + 0.5 * self.log_variance.sum()

    def weights(self) -> Tensor:
        return self.factor * torch.exp(-self.log_variance)

    def record(self) -> dict[str, Any]:
        record = super().record()
        values = self.log_variance.detach().cpu().tolist()
        record["log_variance"] = dict(zip(self.task_names, values, strict=True))
        return record


class DynamicWeightAverage(TaskWeighting):
    """Dynamic weight average (Liu et al., CVPR 2019): weights from the rate of loss descent.

    Example:
        >>> tasks = [TaskSpec(name=n, column=n, type="binary") for n in ("a", "b")]
        >>> dwa = DynamicWeightAverage(tasks, temperature=2.0)
        >>> for losses in ([1.0, 1.0], [0.5, 1.0]):  # epoch means: a halves, b stays
        ...     _ = dwa.combine(torch.tensor(losses))
        ...     dwa.end_epoch(DistContext())
        >>> [round(w, 4) for w in dwa.weights().tolist()]  # 2·softmax([0.5, 1] / 2)
        [0.8756, 1.1244]
    """

    strategy = "dwa"

    def __init__(self, tasks: Sequence[TaskSpec], temperature: float = 2.0) -> None:
        super().__init__(tasks)
        t = len(tasks)
        self.temperature = temperature
        self.register_buffer("lambdas", torch.ones(t))  # λ_k of the current epoch
        self.register_buffer("epoch_sum", torch.zeros(t))  # Σ of L_k over this epoch's steps
        self.register_buffer("epoch_steps", torch.zeros(()))
        self.register_buffer("history", torch.zeros(2, t))  # mean L_k of epochs t-2 and t-1
        self.register_buffer("epochs_done", torch.zeros(()))

    def combine(self, per_task: Tensor, scale: float = 1.0) -> Tensor:
        self.epoch_sum += per_task.detach()
        self.epoch_steps += 1
        return (self.lambdas * self.static * per_task).sum() * scale

    def end_epoch(self, dist: DistContext) -> None:
        if self.epoch_steps.item() == 0:
            return
        mean = all_reduce_sum(dist, self.epoch_sum.clone()) / self.epoch_steps
        self.history[0] = self.history[1]
        self.history[1] = mean
        self.epochs_done += 1
        self.epoch_sum.zero_()
        self.epoch_steps.zero_()
        if self.epochs_done.item() >= 2:
            rate = self.history[1] / self.history[0].clamp(min=1e-12)  # r_k(t-1)
            self.lambdas.copy_(len(self.task_names) * torch.softmax(rate / self.temperature, 0))

    def weights(self) -> Tensor:
        return self.lambdas


class GradNorm(TaskWeighting):
    """GradNorm (Chen et al., ICML 2018) on the last shared layer's weight.

    Args:
        tasks: the task specs.
        shared: the weight tensor of the last layer every task shares.
        alpha: the asymmetry ``α``: how strongly slower tasks are pushed.
        rows: the entries along ``shared``'s first dimension that every task shares (CGC and
            PLE stack task and shared experts in one tensor); ``None``: all of it.

    Example:
        >>> w = nn.Parameter(torch.ones(2))
        >>> tasks = [TaskSpec(name=n, column=n, type="regression") for n in ("a", "b")]
        >>> gradnorm = GradNorm(tasks, w, alpha=0.0)
        >>> loss = gradnorm.combine(torch.stack([(w * 3).sum(), w.sum()]))  # ‖∇‖: 3√2 and √2
        >>> [round(v, 4) for v in gradnorm.weight_grad.tolist()]  # larger norm down, smaller up
        [4.2426, -1.4142]
    """

    strategy = "gradnorm"

    def __init__(
        self,
        tasks: Sequence[TaskSpec],
        shared: Tensor,
        alpha: float = 1.5,
        rows: slice | None = None,
    ) -> None:
        super().__init__(tasks)
        self.alpha, self.rows = alpha, rows
        self.shared = [shared]  # a list: not registered as this module's parameter
        self.task_weights = nn.Parameter(torch.ones(len(tasks)))  # w_k
        self.register_buffer("initial_loss", torch.zeros(len(tasks)))  # L_k(0)
        self.register_buffer("started", torch.zeros(()))
        self.weight_grad: Tensor | None = None

    def combine(self, per_task: Tensor, scale: float = 1.0) -> Tensor:
        losses = self.static * per_task  # (T,)
        if self.started.item() == 0:
            self.initial_loss.copy_(losses.detach())
            self.started.fill_(1)
        shared = self.shared[0]
        norms = []
        for k in range(losses.numel()):
            (grad,) = torch.autograd.grad(losses[k], shared, retain_graph=True, allow_unused=True)
            zero = torch.zeros((), device=losses.device)
            if grad is not None and self.rows is not None:
                grad = grad[self.rows]
            norms.append(zero if grad is None else grad.detach().norm())
        norm = torch.stack(norms)  # ‖∇_W L_k‖, (T,)
        w = self.task_weights.detach()
        g = w * norm  # G_k
        ratio = losses.detach() / self.initial_loss.clamp(min=1e-12)  # L̃_k
        target = g.mean() * (ratio / ratio.mean()).pow(self.alpha)
        # ∂/∂w_k of Σ_j |w_j·n_j - target_j| with the targets held constant.
        self.weight_grad = torch.sign(g - target) * norm
        return (w * losses).sum() * scale

    def before_step(self) -> None:
        self.task_weights.grad = self.weight_grad

    @torch.no_grad()
    def after_step(self) -> None:
        w = self.task_weights.clamp_(min=1e-6)
        w.mul_(len(self.task_names) / w.sum())

    def weights(self) -> Tensor:
        return self.task_weights


def make_weighting(
    strategy: str,
    tasks: Sequence[TaskSpec],
    shared: Tensor | None = None,
    *,
    shared_rows: slice | None = None,
    dwa_temperature: float = 2.0,
    gradnorm_alpha: float = 1.5,
    world_size: int = 1,
) -> TaskWeighting | None:
    """The strategy ``training.task_weighting`` names; ``None`` for ``fixed``.

    Args:
        shared: the model's last shared weight (``MultiTaskModel.shared_layer_weight``); GradNorm
            needs it.
        shared_rows: which entries of ``shared`` all tasks share
            (``MultiTaskModel.shared_layer_rows``; ``None``: all).

    Raises:
        ConfigError: GradNorm without a shared layer or under several processes.
    """
    if strategy == "fixed":
        return None
    if strategy == "uncertainty":
        return UncertaintyWeighting(tasks)
    if strategy == "dwa":
        return DynamicWeightAverage(tasks, dwa_temperature)
    if strategy == "gradnorm":
        if shared is None:
            raise ConfigError(
                "training.task_weighting: gradnorm needs a model with a shared layer "
                "(shared_bottom, omoe, mmoe, or cgc/ple with shared experts); "
                "use uncertainty or dwa"
            )
        if world_size > 1:
            raise ConfigError(
                "training.task_weighting: gradnorm runs in one process only; "
                "use uncertainty or dwa with several processes"
            )
        return GradNorm(tasks, shared, gradnorm_alpha, shared_rows)
    raise ConfigError(f"unknown training.task_weighting {strategy!r}; use {', '.join(STRATEGIES)}")


__all__ = [
    "STRATEGIES",
    "DynamicWeightAverage",
    "GradNorm",
    "TaskWeighting",
    "UncertaintyWeighting",
    "make_weighting",
]
