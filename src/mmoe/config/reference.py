"""The config reference, generated from the pydantic field descriptions (``docs/config.md``).

Every key of every section, and of every architecture's ``model:`` section, with its type,
default and the one-line meaning its ``Field(description=...)`` gives. New fields and new
architectures appear without editing this module; ``tests/test_config_reference.py`` checks that
the checked-in ``docs/config.md`` equals what :func:`config_reference` writes now. Regenerate it
with ``mmoe config reference -o docs/config.md``.

Example:
    >>> text = config_reference()
    >>> text.startswith("# Config reference")
    True
    >>> "| `num_experts` | int | `8` |" in text
    True
"""

from __future__ import annotations

import json
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from mmoe.config.models import MODEL_CONFIGS
from mmoe.config.run import (
    CensusSource,
    MemorySource,
    RunConfig,
    SyntheticSource,
    TableSource,
    TrainingConfig,
)
from mmoe.specs import CategoricalFeature, FeaturesConfig, NumericFeature, TaskSpec

#: The sections in reading order: (heading, YAML path, class, text under the heading).
_SECTIONS: list[tuple[str, str, type[BaseModel], str]] = [
    ("Top level", "", RunConfig, "The five sections and an optional name."),
    ("data: source table", "data", TableSource, "Your own CSV/TSV/Parquet files."),
    ("data: source census", "data", CensusSource, "The paper's UCI Census-Income files."),
    (
        "data: source synthetic",
        "data",
        SyntheticSource,
        "The paper's synthetic problem; it brings features x0 … x(d-1) and tasks y1, y2.",
    ),
    (
        "data: source memory",
        "data",
        MemorySource,
        'Set for you by `mmoe.train(config, data={"train": df, "valid": df, "test": df})` '
        "(pandas DataFrames or pyarrow Tables; valid and test optional).",
    ),
    ("features", "features", FeaturesConfig, "Which columns feed the model."),
    (
        "features.categorical items",
        "features.categorical[]",
        CategoricalFeature,
        "A bare column name is short for `{name: COLUMN}`.",
    ),
    (
        "features.numeric items",
        "features.numeric[]",
        NumericFeature,
        "A bare column name is short for `{name: COLUMN}`.",
    ),
    (
        "tasks items",
        "tasks[]",
        TaskSpec,
        "A binary label is 1 where the value is in `positive` or `>= threshold`; with neither, "
        "the column must hold 0/1 or true/false. For a strict `> 0` on whole numbers write "
        "`threshold: 1`. A missing label masks the row out of that task only.",
    ),
]

_INTRO = """# Config reference

Generated from the code by `mmoe config reference -o docs/config.md`; do not edit by hand.
`mmoe config show CONFIG` prints a config with every default filled in, `mmoe config validate
CONFIG` checks one, `mmoe config schema` prints the JSON Schema (for editor completion), and
`mmoe init TABLE --task COLUMN` writes a starter config from a table.

Every section rejects unknown keys. `null` in YAML is Python's `None`. Any key can be set on
the command line with `--set section.key=VALUE` (the value is read as YAML:
`--set model.expert_hidden=[32,16]`, `--set tasks.0.weight=2`).

YAML reads unquoted `yes`, `no`, `on`, `off`, `true`, `false` as booleans: write label values
such as `positive: ["yes"]` in quotes.
"""


def config_reference() -> str:
    """The whole reference as Markdown (what ``docs/config.md`` holds)."""
    parts = [_INTRO]
    for heading, path, cls, text in _SECTIONS:
        parts.append(_section(heading, path, cls, text))
    for name, cls in MODEL_CONFIGS.items():
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        doc = re.sub(r":\w+:`([^`]+)`", r"`\1`", doc).replace("``", "`")  # reST → Markdown
        parts.append(_section(f"model: name {name}", "model", cls, doc))
    parts.append(_section("training", "training", TrainingConfig, TrainingConfig.__doc__ or ""))
    return "\n".join(parts)


def _section(heading: str, path: str, cls: type[BaseModel], text: str) -> str:
    where = f"Keys under `{path}`. " if path else ""
    lines = [f"## {heading}", "", where + text.strip(), "", "| key | type | default | meaning |"]
    lines.append("|---|---|---|---|")
    for key, field in cls.model_fields.items():
        meaning = (field.description or "").replace("|", "\\|")
        lines.append(f"| `{key}` | {_type(field.annotation)} | {_default(field)} | {meaning} |")
    return "\n".join(lines) + "\n"


def _default(field: Any) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(all defaults)"
    if isinstance(value, Path):
        value = str(value)
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _type(annotation: Any) -> str:
    """A short human name: ``int``, ``list of int``, ``int or null``, ``"a" \\| "b"``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        return _type(args[0])
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        named = [a for a in args if a is not type(None)]
        if all(isinstance(a, type) and issubclass(a, BaseModel) for a in named):
            return "section"
        scalars = {str, bool, int, float}
        if set(named) == scalars:
            text = "text, number or bool"
        else:
            text = " or ".join(_type(a) for a in named)
        return text + (" or null" if len(named) < len(args) else "")
    if origin is list:
        inner = args[0] if args else Any
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return "list (items below)"
        return f"list of {_type(inner)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if annotation is Path:
        return "path"
    if annotation is str:
        return "text"
    return getattr(annotation, "__name__", str(annotation))


def config_schema() -> dict[str, Any]:
    """The JSON Schema of a run config (for editors: YAML language servers read it)."""
    schema = RunConfig.model_json_schema()
    schema["title"] = "mmoe run config"
    return schema


__all__ = ["config_reference", "config_schema"]
