"""Architectures, one file each, and the registry that builds them from a config."""

from mmoe.config.models import (
    CGCConfig,
    MMoEConfig,
    ModelConfig,
    OMoEConfig,
    PLEConfig,
    SharedBottomConfig,
)
from mmoe.models.base import MultiTaskModel
from mmoe.models.cgc import CGC
from mmoe.models.ensemble import SeedEnsemble
from mmoe.models.mmoe import MMoE
from mmoe.models.omoe import OMoE
from mmoe.models.ple import PLE
from mmoe.models.registry import ARCHITECTURES, build_model
from mmoe.models.shared_bottom import SharedBottom

__all__ = [
    "ARCHITECTURES",
    "CGC",
    "PLE",
    "CGCConfig",
    "MMoE",
    "MMoEConfig",
    "ModelConfig",
    "MultiTaskModel",
    "OMoE",
    "OMoEConfig",
    "PLEConfig",
    "SeedEnsemble",
    "SharedBottom",
    "SharedBottomConfig",
    "build_model",
]
