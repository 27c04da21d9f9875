"""Architectures, one file each, and the registry that builds them from a config."""

from mmoe.models.base import MultiTaskModel
from mmoe.models.mmoe import MMoE, MMoEConfig
from mmoe.models.omoe import OMoE, OMoEConfig
from mmoe.models.registry import ARCHITECTURES, ModelConfig, build_model
from mmoe.models.shared_bottom import SharedBottom, SharedBottomConfig

__all__ = [
    "ARCHITECTURES",
    "MMoE",
    "MMoEConfig",
    "ModelConfig",
    "MultiTaskModel",
    "OMoE",
    "OMoEConfig",
    "SharedBottom",
    "SharedBottomConfig",
    "build_model",
]
