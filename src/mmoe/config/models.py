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

from pydantic import BaseModel, ConfigDict, Field, model_validator

GATE_DROPOUT_HELP = (
    "Probability of dropping each expert's gate weight in training (the rest are renormalised "
    "to sum to 1); 0 turns it off, as in the paper. Against gate polarisation, where a gate "
    "sends nearly all its weight to one expert: Zhao et al., RecSys 2019, used 0.1."
)

# Descriptions shared by the architectures (the config reference shows them per key).
_EXPERTS = "Number of expert MLPs."
_EXPERT_HIDDEN = "Widths of each expert MLP's layers (all experts alike)."
_TOWER = "Hidden widths of each task's tower; [] is a single linear output."
_GATE = "Hidden widths of each gate; [] is the paper's linear gate."
_DROPOUT = "Dropout rate after each hidden ReLU."


class InputBlockConfig(BaseModel):
    """Options of the shared input block every architecture starts with (embedding → experts).

    All off by default: the model then runs the plain embedding and nothing more.
    """

    model_config = ConfigDict(extra="forbid")

    cross_layers: int = Field(
        default=0,
        ge=0,
        description="DCN-v2 cross layers (Wang et al., WWW 2021) between the embedded input and "
        "the experts/bottom; 0 = none.",
    )
    cross_rank: int | None = Field(
        default=None,
        ge=1,
        description="Rank of the low-rank cross layers (U V^T); unset = full D x D matrices.",
    )
    input_dropout: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Dropout on the embedded input vector (embeddings and numeric columns) "
        "before the cross layers, experts, gates and bottom.",
    )


class SharedBottomConfig(InputBlockConfig):
    """Hyper-parameters of :class:`SharedBottom` (the ``model:`` section of a run config)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["shared_bottom"] = Field(
        default="shared_bottom", description="One shared bottom MLP, one tower per task."
    )
    bottom_hidden: list[int] = Field(
        default=[113], min_length=1, description="Widths of the shared bottom MLP's layers."
    )
    tower_hidden: list[int] = Field(default=[8], description=_TOWER)
    dropout: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Dropout after every ReLU of the bottom and the towers (the bottom's "
        "output included).",
    )


class OMoEConfig(InputBlockConfig):
    """Hyper-parameters of :class:`OMoE` (the ``model:`` section of a run config)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["omoe"] = Field(
        default="omoe", description="Experts mixed by one gate shared by all tasks."
    )
    num_experts: int = Field(default=8, ge=1, description=_EXPERTS)
    expert_hidden: list[int] = Field(default=[16], min_length=1, description=_EXPERT_HIDDEN)
    tower_hidden: list[int] = Field(default=[8], description=_TOWER)
    gate_hidden: list[int] = Field(default=[], description=_GATE)
    dropout: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Dropout after every ReLU of the experts (their outputs included, so "
        "single-layer experts get it too) and of the towers.",
    )
    gate_dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description=GATE_DROPOUT_HELP)


class MMoEConfig(InputBlockConfig):
    """Hyper-parameters of :class:`MMoE` (the ``model:`` section of a run config)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["mmoe"] = Field(
        default="mmoe", description="Experts mixed by one gate per task (the default model)."
    )
    num_experts: int = Field(default=8, ge=1, description=_EXPERTS)
    expert_hidden: list[int] = Field(default=[16], min_length=1, description=_EXPERT_HIDDEN)
    tower_hidden: list[int] = Field(default=[8], description=_TOWER)
    gate_hidden: list[int] = Field(default=[], description=_GATE)
    dropout: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Dropout after every ReLU of the experts (their outputs included, so "
        "single-layer experts get it too) and of the towers.",
    )
    gate_dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description=GATE_DROPOUT_HELP)


class CGCConfig(InputBlockConfig):
    """Hyper-parameters of :class:`CGC` (the ``model:`` section of a run config)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["cgc"] = Field(
        default="cgc",
        description="Customized Gate Control (Tang et al., RecSys 2020): shared and per-task "
        "experts, one gate per task.",
    )
    num_shared_experts: int = Field(
        default=4, ge=0, description="Experts shared by every task (each task's gate mixes them)."
    )
    num_task_experts: int = Field(
        default=2, ge=0, description="Experts of each task, read only by that task's gate."
    )
    expert_hidden: list[int] = Field(
        default=[16], min_length=1, description="Widths of the layers of each expert MLP."
    )
    tower_hidden: list[int] = Field(
        default=[8], description="Hidden widths of each task tower (a logit layer follows)."
    )
    gate_hidden: list[int] = Field(
        default=[], description="Hidden layers in front of each gate; empty = a linear gate."
    )
    dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Dropout after each hidden ReLU."
    )

    gate_dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description=GATE_DROPOUT_HELP)

    @model_validator(mode="after")
    def _every_gate_has_an_expert(self) -> CGCConfig:
        if self.num_shared_experts + self.num_task_experts < 1:
            raise ValueError(
                "num_shared_experts + num_task_experts must be at least 1 (a gate needs experts)"
            )
        return self


class PLEConfig(CGCConfig):
    """Hyper-parameters of :class:`PLE` (the ``model:`` section of a run config)."""

    name: Literal["ple"] = Field(  # type: ignore[assignment]
        default="ple",
        description="Progressive Layered Extraction (Tang et al., RecSys 2020): stacked CGC "
        "levels with shared gates between them.",
    )
    num_levels: int = Field(
        default=2,
        ge=1,
        description="Extraction levels; every level but the last has a shared gate (1 = CGC).",
    )


#: The ``model:`` section of a run config: one of the config classes, chosen by ``name``.
ModelConfig = Annotated[
    SharedBottomConfig | OMoEConfig | MMoEConfig | CGCConfig | PLEConfig,
    Field(discriminator="name"),
]

#: Every architecture's config class by name (the registry pairs each with its network).
MODEL_CONFIGS: dict[str, type[BaseModel]] = {
    "shared_bottom": SharedBottomConfig,
    "omoe": OMoEConfig,
    "mmoe": MMoEConfig,
    "cgc": CGCConfig,
    "ple": PLEConfig,
}

__all__ = [
    "MODEL_CONFIGS",
    "CGCConfig",
    "InputBlockConfig",
    "MMoEConfig",
    "ModelConfig",
    "OMoEConfig",
    "PLEConfig",
    "SharedBottomConfig",
]
