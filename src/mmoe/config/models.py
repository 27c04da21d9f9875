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

GATE_DROPOUT_HELP = (
    "Probability of dropping each expert's gate weight in training (the rest are renormalised "
    "to sum to 1); 0 turns it off, as in the paper. Against gate polarisation, where a gate "
    "sends nearly all its weight to one expert: Zhao et al., RecSys 2019, used 0.1."
)


class SharedBottomConfig(BaseModel):
    """Hyper-parameters of :class:`SharedBottom` (the ``model:`` section of a run config)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["shared_bottom"] = "shared_bottom"
    bottom_hidden: list[int] = Field(default=[113], min_length=1)  # widths of the shared MLP
    tower_hidden: list[int] = Field(default=[8])  # hidden widths of each task tower
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)  # after each hidden ReLU


class OMoEConfig(BaseModel):
    """Hyper-parameters of :class:`OMoE` (the ``model:`` section of a run config)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["omoe"] = "omoe"
    num_experts: int = Field(default=8, ge=1)
    expert_hidden: list[int] = Field(default=[16], min_length=1)  # widths of each expert MLP
    tower_hidden: list[int] = Field(default=[8])  # hidden widths of each task tower
    gate_hidden: list[int] = Field(default=[])  # empty = the paper's linear gate
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    gate_dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description=GATE_DROPOUT_HELP)


class MMoEConfig(BaseModel):
    """Hyper-parameters of :class:`MMoE` (the ``model:`` section of a run config)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["mmoe"] = "mmoe"
    num_experts: int = Field(default=8, ge=1)
    expert_hidden: list[int] = Field(default=[16], min_length=1)  # widths of each expert MLP
    tower_hidden: list[int] = Field(default=[8])  # hidden widths of each task tower
    gate_hidden: list[int] = Field(default=[])  # empty = the paper's linear gate
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    gate_dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description=GATE_DROPOUT_HELP)


#: The ``model:`` section of a run config: one of the config classes, chosen by ``name``.
ModelConfig = Annotated[SharedBottomConfig | OMoEConfig | MMoEConfig, Field(discriminator="name")]

#: Every architecture's config class by name (the registry pairs each with its network).
MODEL_CONFIGS: dict[str, type[BaseModel]] = {
    "shared_bottom": SharedBottomConfig,
    "omoe": OMoEConfig,
    "mmoe": MMoEConfig,
}

__all__ = ["MODEL_CONFIGS", "MMoEConfig", "ModelConfig", "OMoEConfig", "SharedBottomConfig"]
