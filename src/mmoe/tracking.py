"""Experiment tracking: ``training.log_to: [tensorboard, mlflow]`` (optional extras).

Each evaluation record (training loss per task, validation metrics, learning rate, throughput)
goes to every configured backend at its step; with ``training.log_every_steps: N`` the running
training loss and the learning rate also go every N steps. ``metrics.jsonl`` in the run directory
is always written, whatever ``log_to`` says.

* ``tensorboard`` (``pip install 'mmoe[tensorboard]'``): event files in ``RUN/tensorboard/``;
  view them with ``tensorboard --logdir runs``.
* ``mlflow`` (``pip install 'mmoe[mlflow]'``): one MLflow run per mmoe run, with the config as
  parameters and the run directory as a tag, in the tracking store that ``MLFLOW_TRACKING_URI``
  names (MLflow's default: ``./mlruns``).

Example:
    >>> tracker = Tracker([], run_dir=None, config={}, name="demo")   # no backend: does nothing
    >>> tracker.log_scalars({"train/loss": 0.5}, step=1)
    >>> tracker.close()
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmoe.errors import ConfigError

BACKENDS = ("tensorboard", "mlflow")
_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}


def check_backends(names: Sequence[str]) -> None:
    """A ``ConfigError`` line when a configured backend's package is not installed."""
    for name in names:
        if importlib.util.find_spec(_PACKAGES[name]) is None:
            raise ConfigError(
                f"training.log_to: {name} is not installed; pip install 'mmoe[{name}]' "
                f"(or remove {name} from training.log_to)"
            )


class Tracker:
    """Sends scalars to the configured backends; a no-op when ``backends`` is empty.

    Args:
        backends: names from :data:`BACKENDS`.
        run_dir: where TensorBoard writes ``tensorboard/`` (``None``: TensorBoard is skipped).
        config: the run config as plain data (MLflow parameters).
        name: the run's name (MLflow's run name).
        final_dir: the run directory's final name (``run_dir`` is its staging directory).
    """

    def __init__(
        self,
        backends: Sequence[str],
        run_dir: Path | None,
        config: dict[str, Any],
        name: str,
        final_dir: Path | None = None,
    ) -> None:
        check_backends(backends)
        self._writer: Any = None
        self._mlflow: Any = None
        if "tensorboard" in backends and run_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        if "mlflow" in backends:
            import mlflow

            try:
                mlflow.start_run(run_name=name)
            except Exception as exc:  # MLflow's own errors: a bad URI, an unreachable server
                self.close()
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                raise ConfigError(
                    f"training.log_to: mlflow cannot start a run ({first[:300]}); "
                    "check MLFLOW_TRACKING_URI"
                ) from None
            self._mlflow = mlflow
            mlflow.log_params(_flatten(config))
            if final_dir or run_dir:
                mlflow.set_tag("mmoe.run_dir", str(final_dir or run_dir))

    def log_scalars(self, scalars: dict[str, float], step: int) -> None:
        """Log ``{"valid/income/auc": 0.94, ...}`` at ``step`` (non-finite values skipped)."""
        finite = {k: float(v) for k, v in scalars.items() if v is not None and v == v}
        if self._writer is not None:
            for key, value in finite.items():
                self._writer.add_scalar(key, value, step)
        if self._mlflow is not None and finite:
            # MLflow keys allow letters, digits, _-./ and spaces: task names may hold others.
            self._mlflow.log_metrics({_mlflow_key(k): v for k, v in finite.items()}, step=step)

    def log_evaluation(self, record: dict[str, Any]) -> None:
        """An evaluation record of ``metrics.jsonl``, flattened to scalars."""
        scalars = {f"train/{t}/loss": v for t, v in record["train_loss"].items()}
        for task, metrics in record["valid"].items():
            scalars.update({f"valid/{task}/{m}": v for m, v in metrics.items() if m != "rows"})
        scalars["learning_rate"] = record["learning_rate"]
        scalars["samples_per_second"] = record["samples_per_second"]
        self.log_scalars(scalars, record["step"])

    def close(self, status: str = "FINISHED") -> None:
        """Flush and close every backend (MLflow's run ends with ``status``)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._mlflow is not None:
            self._mlflow.end_run(status=status)
            self._mlflow = None


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """``{"model": {"num_experts": 8}}`` → ``{"model.num_experts": "8"}`` (lists as text)."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): str(value)[:500]}


def _mlflow_key(key: str) -> str:
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in key)


__all__ = ["BACKENDS", "Tracker", "check_backends"]
