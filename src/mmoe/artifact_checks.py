"""Cross-checks of a run directory's three files, one line per mismatch.

``config.json``, ``preprocessor.json`` and ``model.safetensors`` are written together by one
run; a file copied in from another run, or edited by hand, must not load silently with swapped
task outputs or an embedding table of the wrong size. Each check returns the lines it finds
wrong; ``mmoe.artifacts.load_run_files`` raises them together as one ``ArtifactError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mmoe.config import RunConfig
from mmoe.specs import FeaturesConfig, InputSpec, TaskSpec


def task_problems(
    config: RunConfig, preprocessor_tasks: Sequence[TaskSpec], weights_tasks: Sequence[str] | None
) -> list[str]:
    """Task names, order and types: config.json vs preprocessor.json vs the weights' metadata."""
    problems = []
    config_names = [t.name for t in config.tasks]
    pre_names = [t.name for t in preprocessor_tasks]
    if pre_names != config_names:
        problems.append(
            f"preprocessor.json lists the tasks {pre_names} but config.json lists {config_names}"
            " (order matters: it is the order of the model's outputs)"
        )
    else:
        for ours, theirs in zip(config.tasks, preprocessor_tasks, strict=True):
            if ours.type != theirs.type:
                problems.append(
                    f"task {ours.name!r} is {ours.type} in config.json but {theirs.type} in "
                    "preprocessor.json"
                )
    if weights_tasks is not None and list(weights_tasks) != config_names:
        problems.append(
            f"model.safetensors was trained for the tasks {list(weights_tasks)} but config.json "
            f"lists {config_names}"
        )
    return problems


def feature_problems(config: FeaturesConfig, preprocessor: FeaturesConfig) -> list[str]:
    """Feature columns and kinds: config.json vs preprocessor.json."""
    problems = []
    for kind in ("categorical", "numeric"):
        ours = [f.name for f in getattr(config, kind)]
        theirs = [f.name for f in getattr(preprocessor, kind)]
        if ours != theirs:
            problems.append(
                f"config.json lists the {kind} features {_short(ours)} but preprocessor.json "
                f"lists {_short(theirs)}"
            )
    return problems


def weight_problems(
    expected: Mapping[str, tuple[int, ...]],
    found: Mapping[str, tuple[int, ...]],
    inputs: InputSpec,
    categorical: Sequence[str],
) -> list[str]:
    """Tensor names and shapes of model.safetensors vs the network the two JSON files describe.

    An embedding table's row count is the sum of its features' vocabulary sizes (+1 each for
    the unknown index): a mismatch there names those features and their sizes.
    """
    problems = []
    widths = sorted(set(inputs.embedding_dims))
    # Numeric encodings (bins, exact values) add embedded columns after the categorical features.
    extra = len(inputs.cardinalities) - len(categorical)
    categorical = [*categorical, *(f"encoded numeric column {i}" for i in range(extra))]
    for name in sorted(set(expected) | set(found)):
        want, got = expected.get(name), found.get(name)
        if want == got:
            continue
        if want is None:
            problems.append(f"model.safetensors holds {name} {got}, which this model has not")
        elif got is None:
            problems.append(f"model.safetensors lacks {name} {want}")
        elif name.startswith("embedding.tables."):
            width = widths[int(name.rsplit(".", 1)[1])]
            members = [
                f"{feature} {size}"
                for feature, size, dim in zip(
                    categorical, inputs.cardinalities, inputs.embedding_dims, strict=True
                )
                if dim == width
            ]
            problems.append(
                f"preprocessor.json's vocabularies ({_short(members)}; sizes include the unknown "
                f"index) need {want[0]} embedding rows of width {width}, but model.safetensors "
                f"has {got[0]}: the vocabularies and the weights come from different runs"
            )
        else:
            problems.append(
                f"model.safetensors has {name} of shape {list(got)}, but config.json and "
                f"preprocessor.json describe {list(want)}"
            )
    return problems


def _short(items: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}]"


__all__ = ["feature_problems", "task_problems", "weight_problems"]
