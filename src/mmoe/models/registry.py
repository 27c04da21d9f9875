"""Architecture names → (config class, model class). Adding an architecture touches its own file
and this one only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import BaseModel, Field

from mmoe.layers import InputSpec
from mmoe.models.base import MultiTaskModel
from mmoe.models.mmoe import MMoE, MMoEConfig
from mmoe.models.omoe import OMoE, OMoEConfig
from mmoe.models.shared_bottom import SharedBottom, SharedBottomConfig

ARCHITECTURES: dict[str, tuple[type[BaseModel], type[MultiTaskModel]]] = {
    "shared_bottom": (SharedBottomConfig, SharedBottom),
    "omoe": (OMoEConfig, OMoE),
    "mmoe": (MMoEConfig, MMoE),
}

#: The ``model:`` section of a run config: one of the config classes, chosen by ``name``.
ModelConfig = Annotated[SharedBottomConfig | OMoEConfig | MMoEConfig, Field(discriminator="name")]


def build_model(config: BaseModel, inputs: InputSpec, task_names: Sequence[str]) -> MultiTaskModel:
    """Instantiate the architecture ``config.name`` with the config's hyper-parameters.

    Example:
        >>> model = build_model(MMoEConfig(num_experts=4), InputSpec((), (), 10), ["a", "b"])
        >>> type(model).__name__, model.task_names
        ('MMoE', ('a', 'b'))
    """
    _, model_class = ARCHITECTURES[config.name]
    return model_class(inputs, task_names, **config.model_dump(exclude={"name"}))
