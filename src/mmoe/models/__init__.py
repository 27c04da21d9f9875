"""Architectures, one file each, and the registry that builds them from a config."""

from mmoe.config.models import MMoEConfig, ModelConfig, OMoEConfig, SharedBottomConfig
from mmoe.models.base import MultiTaskModel
from mmoe.models.ensemble import SeedEnsemble
from mmoe.models.mmoe import MMoE
from mmoe.models.omoe import OMoE
from mmoe.models.registry import ARCHITECTURES, build_model
from mmoe.models.shared_bottom import SharedBottom

__all__ = [
    "ARCHITECTURES",
    "MMoE",
    "MMoEConfig",
    "ModelConfig",
    "MultiTaskModel",
    "OMoE",
    "OMoEConfig",
    "SeedEnsemble",
    "SharedBottom",
    "SharedBottomConfig",
    "build_model",
]
