"""A trained model as a directory of plain files, and the ``TrainedModel`` that predicts with it.

Run directory layout (format version 1)::

    config.json         the run config, plus "format_version" and "mmoe_version"
    preprocessor.json   vocabularies, numeric statistics, feature and task specs
    model.safetensors   the weights (tensors only; metadata carries the format version)
    metrics.json        validation/test metrics of the kept weights, written by training
    metrics.jsonl       one line per evaluation during training

Loading reads JSON and safetensors only: nothing is unpickled and no code in the directory runs.
Every file is written to a temporary name and renamed into place, so none is ever half-written.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mmoe.errors import ArtifactError, ConfigError

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "preprocessor.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "metrics.jsonl"


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file ordinary permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file of a run directory, or raise one ``ArtifactError`` line."""
    if not path.is_file():
        raise ArtifactError(
            f"{path.parent} has no {path.name}: not a complete mmoe run directory "
            "(was training interrupted?); retrain with `mmoe train`"
        )
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(
            f"{path} is corrupt (not valid JSON: {exc}); retrain the model"
        ) from None


class TrainedModel:
    """A fitted preprocessor and a trained network, ready to predict on new tables.

    Args:
        config: the run config the model was trained with.
        preprocessor: the fitted preprocessor.
        model: the trained network.

    Example:
        >>> import mmoe
        >>> run = mmoe.train({"data": {"source": "synthetic", "num_train": 500},
        ...                   "training": {"epochs": 1}}, progress=False)
        >>> trained = run.model
        >>> trained.task_names
        ('y1', 'y2')
    """

    def __init__(self, config: Any, preprocessor: Any, model: Any) -> None:
        from mmoe.config import RunConfig
        from mmoe.features import Preprocessor
        from mmoe.models.base import MultiTaskModel

        assert isinstance(config, RunConfig) and isinstance(preprocessor, Preprocessor)
        assert isinstance(model, MultiTaskModel)
        self.config = config
        self.preprocessor = preprocessor
        self.model = model.eval()

    @property
    def task_names(self) -> tuple[str, ...]:
        return self.model.task_names

    # ---- prediction ----------------------------------------------------------------------------

    def predict(self, data: Any, batch_size: int = 65_536) -> Any:
        """Per-task predictions as a DataFrame, one column per task, input row order kept.

        Binary tasks give the probability of the positive class; regression tasks give the value.
        ``data`` is a pandas DataFrame, a pyarrow Table or a CSV/Parquet path; categories unseen
        in training map to the unknown index, a missing feature column is a ``DataError``.
        """
        import pandas as pd

        logits = self.predict_logits(data, batch_size)
        out = {}
        for k, task in enumerate(self.preprocessor.tasks):
            z = logits[:, k]
            out[task.name] = 1.0 / (1.0 + np.exp(-z)) if task.type == "binary" else z
        return pd.DataFrame(out)

    def predict_logits(self, data: Any, batch_size: int = 65_536) -> np.ndarray:
        """Raw model outputs ``(N, T)`` (logits of binary tasks, values of regression tasks)."""
        from mmoe.training.evaluation import predict_logits

        batch = self.preprocessor.transform(self._table(data), labels=False)
        logits, _ = predict_logits(self.model, batch, batch_size)
        return logits.numpy().astype(np.float64)

    def gate_weights(self, data: Any, batch_size: int = 65_536) -> np.ndarray:
        """Gate weights ``(N, T, E)``: how each task mixes the experts on each row."""
        from mmoe.training.evaluation import predict_logits

        if not self.model.has_gates:
            raise ConfigError(f"{type(self.model).__name__} has no gates")
        batch = self.preprocessor.transform(self._table(data), labels=False)
        _, gates = predict_logits(self.model, batch, batch_size, gates=True)
        assert gates is not None
        return gates.numpy()

    def evaluate(self, data: Any, batch_size: int = 65_536) -> dict[str, dict[str, float]]:
        """Per-task metrics on a labelled table (every task's label column must be present)."""
        from mmoe.training.evaluation import evaluate

        batch = self.preprocessor.transform(self._table(data), labels=True)
        return evaluate(self.model, batch, self.preprocessor.tasks, batch_size)

    def _table(self, data: Any) -> Any:
        from mmoe.data.sources import read_any

        if isinstance(data, str | Path):
            return read_any(data, self.config.data)
        return data

    # ---- persistence ---------------------------------------------------------------------------

    def save(self, run_dir: str | Path) -> None:
        """Write the config, preprocessor and weights files into ``run_dir``."""
        from importlib.metadata import version

        from safetensors.torch import save_file

        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        header = {"format_version": FORMAT_VERSION, "mmoe_version": version("mmoe")}
        write_json(run_dir / CONFIG_FILE, {**header, **self.config.model_dump(mode="json")})
        write_json(run_dir / PREPROCESSOR_FILE, self.preprocessor.to_dict())
        state = {k: v.detach().contiguous() for k, v in self.model.state_dict().items()}
        meta = {"format_version": str(FORMAT_VERSION), "architecture": self.config.model.name}
        with atomic_path(run_dir / WEIGHTS_FILE) as tmp:
            save_file(state, str(tmp), metadata=meta)

    @classmethod
    def load(cls, run_dir: str | Path) -> TrainedModel:
        """Rebuild a trained model from a run directory (JSON + safetensors only)."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from mmoe.config import parse_config
        from mmoe.features import Preprocessor
        from mmoe.models.registry import build_model

        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise ArtifactError(f"run directory not found: {run_dir}")
        raw = read_json(run_dir / CONFIG_FILE)
        if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
            found = raw.get("format_version") if isinstance(raw, dict) else None
            raise ArtifactError(
                f"{run_dir / CONFIG_FILE}: format version {found!r} is not supported "
                f"(this mmoe reads version {FORMAT_VERSION})"
            )
        try:
            config = parse_config(raw, origin=str(run_dir / CONFIG_FILE))
            preprocessor = Preprocessor.from_dict(read_json(run_dir / PREPROCESSOR_FILE))
        except (ConfigError, KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(
                f"{run_dir} holds an invalid config or preprocessor: {exc}"
            ) from None
        weights = run_dir / WEIGHTS_FILE
        if not weights.is_file():
            read_json(weights)  # raises the "no such file" ArtifactError
        try:
            state = load_file(str(weights))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ArtifactError(f"{weights} is corrupt ({exc}); retrain the model") from None
        names = [t.name for t in preprocessor.tasks]
        model = build_model(config.model, preprocessor.input_spec(), names)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ArtifactError(f"{weights} does not match {CONFIG_FILE}: {first}") from None
        return cls(config, preprocessor, model)


def load(run_dir: str | Path) -> TrainedModel:
    """Load a run directory written by ``mmoe train`` (see :class:`TrainedModel`)."""
    return TrainedModel.load(run_dir)


__all__ = ["TrainedModel", "atomic_path", "load", "read_json", "write_json"]
