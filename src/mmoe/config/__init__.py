"""The typed run configuration: YAML in, validated, ``--set`` overrides, JSON out.

Importing this package loads neither torch nor pyarrow.

A run config has the sections ``data``, ``features``, ``tasks``, ``model``, ``training`` and
``metrics`` (``mmoe.config.run`` describes each).

Every section forbids unknown keys; a typo, a wrong type or an inconsistent choice is a
``ConfigError`` whose message is one line naming the key and the fix.

Example:
    >>> cfg = parse_config({"data": {"source": "synthetic"}, "model": {"name": "mmoe"}})
    >>> cfg.model.num_experts, [t.name for t in cfg.tasks]
    (8, ['y1', 'y2'])
    >>> parse_config(cfg.model_dump(), ["model.num_experts=4"]).model.num_experts
    4
"""

from mmoe.config.loading import (
    apply_override,
    describe_validation_error,
    load_config,
    parse_config,
    read_raw_config,
)
from mmoe.config.models import MMoEConfig, ModelConfig, OMoEConfig, SharedBottomConfig
from mmoe.config.run import (
    ARTIFACT_KEYS,
    CensusSource,
    DataConfig,
    MemorySource,
    MetricsConfig,
    MonitorMetric,
    MovieLensSource,
    ParquetDatasetSource,
    RunConfig,
    SyntheticSource,
    TableSource,
    TrainingConfig,
)

__all__ = [
    "ARTIFACT_KEYS",
    "CensusSource",
    "DataConfig",
    "MMoEConfig",
    "MemorySource",
    "MetricsConfig",
    "ModelConfig",
    "MonitorMetric",
    "MovieLensSource",
    "OMoEConfig",
    "ParquetDatasetSource",
    "RunConfig",
    "SharedBottomConfig",
    "SyntheticSource",
    "TableSource",
    "TrainingConfig",
    "apply_override",
    "describe_validation_error",
    "load_config",
    "parse_config",
    "read_raw_config",
]
