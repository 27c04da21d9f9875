"""The ``model:`` section: one hyper-parameter class per architecture, chosen by ``name``.

These classes are plain data (pydantic, no torch) so that a config can be read and validated
without importing torch; each architecture's module (``mmoe.models.<name>``) builds its network
from exactly these fields, and ``mmoe.models.registry`` pairs each class with its network.

Example:
    >>> MMoEConfig(num_experts=4).model_dump()["expert_hidden"]
    [16]
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# Descriptions shared by the architectures (the config reference shows them per key).
_EXPERTS = "Number of expert MLPs."
_EXPERT_HIDDEN = "Widths of each expert MLP's layers (all experts alike)."
_TOWER = "Hidden widths of each task's tower; [] is a single linear output."
_GATE = "Hidden widths of each gate; [] is the paper's linear gate."
_DROPOUT = "Dropout rate after each hidden ReLU."


class SharedBottomConfig(BaseModel):
    """Hyper-parameters of :class:`SharedBottom` (the ``model:`` section of a run config)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["shared_bottom"] = Field(
        default="shared_bottom", description="One shared bottom MLP, one tower per task."
    )
    bottom_hidden: list[int] = Field(
        default=[113], min_length=1, description="Widths of the shared bottom MLP's layers."
    )
    tower_hidden: list[int] = Field(default=[8], description=_TOWER)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description=_DROPOUT)


class OMoEConfig(BaseModel):
    """Hyper-parameters of :class:`OMoE` (the ``model:`` section of a run config)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["omoe"] = Field(
        default="omoe", description="Experts mixed by one gate shared by all tasks."
    )
    num_experts: int = Field(default=8, ge=1, description=_EXPERTS)
    expert_hidden: list[int] = Field(default=[16], min_length=1, description=_EXPERT_HIDDEN)
    tower_hidden: list[int] = Field(default=[8], description=_TOWER)
    gate_hidden: list[int] = Field(default=[], description=_GATE)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description=_DROPOUT)


class MMoEConfig(BaseModel):
    """Hyper-parameters of :class:`MMoE` (the ``model:`` section of a run config)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["mmoe"] = Field(
        default="mmoe", description="Experts mixed by one gate per task (the default model)."
    )
    num_experts: int = Field(default=8, ge=1, description=_EXPERTS)
    expert_hidden: list[int] = Field(default=[16], min_length=1, description=_EXPERT_HIDDEN)
    tower_hidden: list[int] = Field(default=[8], description=_TOWER)
    gate_hidden: list[int] = Field(default=[], description=_GATE)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description=_DROPOUT)


#: The ``model:`` section of a run config: one of the config classes, chosen by ``name``.
ModelConfig = Annotated[SharedBottomConfig | OMoEConfig | MMoEConfig, Field(discriminator="name")]

#: Every architecture's config class by name (the registry pairs each with its network).
MODEL_CONFIGS: dict[str, type[BaseModel]] = {
    "shared_bottom": SharedBottomConfig,
    "omoe": OMoEConfig,
    "mmoe": MMoEConfig,
}

__all__ = ["MODEL_CONFIGS", "MMoEConfig", "ModelConfig", "OMoEConfig", "SharedBottomConfig"]
