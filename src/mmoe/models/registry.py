"""Architecture names → network classes. Adding an architecture touches its own file, its config
class in ``mmoe.config.models`` and this table."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from mmoe.models.base import MultiTaskModel
from mmoe.models.cgc import CGC
from mmoe.models.mmoe import MMoE
from mmoe.models.omoe import OMoE
from mmoe.models.ple import PLE
from mmoe.models.shared_bottom import SharedBottom
from mmoe.specs import InputSpec

ARCHITECTURES: dict[str, type[MultiTaskModel]] = {
    "shared_bottom": SharedBottom,
    "omoe": OMoE,
    "mmoe": MMoE,
    "cgc": CGC,
    "ple": PLE,
}


def build_model(config: BaseModel, inputs: InputSpec, task_names: Sequence[str]) -> MultiTaskModel:
    """Instantiate the architecture ``config.name`` with the config's hyper-parameters.

    Example:
        >>> from mmoe.config.models import MMoEConfig
        >>> model = build_model(MMoEConfig(num_experts=4), InputSpec((), (), 10), ["a", "b"])
        >>> type(model).__name__, model.task_names
        ('MMoE', ('a', 'b'))
    """
    model_class = ARCHITECTURES[config.name]  # type: ignore[attr-defined]
    assert isinstance(config, model_class.config_class)
    return model_class(inputs, task_names, **config.model_dump(exclude={"name"}))
