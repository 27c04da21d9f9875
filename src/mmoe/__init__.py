"""mmoe: multi-task learning for recommendation and ranking.

Shared-Bottom, OMoE and MMoE (Ma et al., KDD 2018) trained from a config on tabular data.

Example:
    >>> import mmoe
    >>> run = mmoe.train("configs/synthetic-mmoe.yaml")          # doctest: +SKIP
    >>> model = mmoe.load(run.run_dir)                            # doctest: +SKIP
    >>> model.predict(df)                                         # doctest: +SKIP

Importing ``mmoe`` is light: torch and the rest load on first use of a name below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "train": "mmoe.training.run",
    "Run": "mmoe.training.run",
    "load": "mmoe.predictor",
    "export": "mmoe.onnx.export",
    "TrainedModel": "mmoe.predictor",
    "Trainer": "mmoe.training.trainer",
    "RunConfig": "mmoe.config",
    "load_config": "mmoe.config",
    "FeaturesConfig": "mmoe.specs",
    "TaskSpec": "mmoe.specs",
    "Preprocessor": "mmoe.data.preprocessor",
    "Batch": "mmoe.data.batch",
    "InputSpec": "mmoe.specs",
    "SharedBottom": "mmoe.models",
    "OMoE": "mmoe.models",
    "MMoE": "mmoe.models",
    "CGC": "mmoe.models",
    "PLE": "mmoe.models",
    "build_model": "mmoe.models",
    "MmoeError": "mmoe.errors",
    "ConfigError": "mmoe.errors",
    "DataError": "mmoe.errors",
    "ArtifactError": "mmoe.errors",
}

__all__ = [
    "CGC",
    "PLE",
    "ArtifactError",
    "Batch",
    "ConfigError",
    "DataError",
    "FeaturesConfig",
    "InputSpec",
    "MMoE",
    "MmoeError",
    "OMoE",
    "Preprocessor",
    "Run",
    "RunConfig",
    "SharedBottom",
    "TaskSpec",
    "TrainedModel",
    "Trainer",
    "build_model",
    "export",
    "load",
    "load_config",
    "train",
]

if TYPE_CHECKING:
    from mmoe.config import RunConfig, load_config
    from mmoe.data.batch import Batch
    from mmoe.data.preprocessor import Preprocessor
    from mmoe.errors import ArtifactError, ConfigError, DataError, MmoeError
    from mmoe.models import CGC, PLE, MMoE, OMoE, SharedBottom, build_model
    from mmoe.onnx.export import export
    from mmoe.predictor import TrainedModel, load
    from mmoe.specs import FeaturesConfig, InputSpec, TaskSpec
    from mmoe.training.run import Run, train
    from mmoe.training.trainer import Trainer


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'mmoe' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
