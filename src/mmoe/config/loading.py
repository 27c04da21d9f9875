"""Reading a run config: YAML in, ``--set`` overrides, validation, one-line error messages."""

from __future__ import annotations

import difflib
import json
import os
import typing
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ValidationError

from mmoe.config.models import MODEL_CONFIGS
from mmoe.config.run import ARTIFACT_KEYS, RunConfig
from mmoe.config.shipped import find_shipped_config
from mmoe.errors import ConfigError

# ---- loading and overrides ---------------------------------------------------------------------


def load_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read a YAML (or JSON) run config, apply ``key.path=value`` overrides and validate it.

    A ``path`` that is not a file may name a shipped config (``census/group1-mmoe``).
    """
    path, raw = read_raw_config(path)
    return parse_config(raw, overrides, origin=str(path))


def read_raw_config(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The file actually read (a shipped config when ``path`` is not a file) and its mapping."""
    path = Path(path)
    if not path.is_file():
        shipped = find_shipped_config(path)
        if shipped is None:
            raise ConfigError(
                f"config file not found: {path} (mmoe init TABLE --task COLUMN writes one; "
                "mmoe config list names the shipped ones)"
            )
        path = shipped
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with data, features, tasks, model, training")
    resolve_data_paths(raw, path.resolve().parent)  # the file's own paths: against its folder
    return path, raw


def parse_config(
    raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = (), origin: str = "config"
) -> RunConfig:
    """Validate a config mapping after applying ``overrides`` (``"model.num_experts=4"``)."""
    raw = json.loads(json.dumps(raw, default=str))  # deep copy; paths become strings
    for key in ARTIFACT_KEYS:  # a run directory's config.json is a valid config too
        raw.pop(key, None)
    for item in overrides:
        apply_override(raw, item)
    resolve_data_paths(raw, Path.cwd())  # --set paths and configs given as data: the shell's
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{origin}: {describe_validation_error(exc, raw)}") from None


#: Keys of the ``data:`` section that name files or folders.
DATA_PATH_KEYS = ("train", "valid", "test", "data_dir")


def resolve_data_paths(raw: dict[str, Any], base: Path) -> None:
    """Make the relative data paths of a raw config absolute, against ``base``, in place.

    A config file's paths are relative to the file's folder (so ``mmoe evaluate RUN test``
    works from any folder: the run stores them resolved); ``--set`` values to the shell's.
    """
    data = raw.get("data")
    if not isinstance(data, dict):
        return
    for key in DATA_PATH_KEYS:
        value = data.get(key)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            data[key] = os.path.normpath(base / value)
        elif isinstance(value, str) and value.startswith("~"):
            data[key] = str(Path(value).expanduser())


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Set ``a.b.c=value`` in ``raw``; the value is parsed as YAML (``4``, ``[16, 8]``, ``true``).

    A numeric path element indexes a list: ``tasks.0.weight=2``.
    """
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. model.num_experts=4")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    parts = key.strip().split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        node = _child(node, part, ".".join(parts[: i + 1]), create=True)
    last = parts[-1]
    if isinstance(node, list):
        node[_index(node, last, key)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"--set {key}: {'.'.join(parts[:-1])} is not a section")


def _child(node: Any, part: str, path: str, create: bool) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, path)]
    if not isinstance(node, dict):
        raise ConfigError(f"--set {path}: the parent is a value, not a section")
    if part not in node or node[part] is None:
        node[part] = {}
    return node[part]


def _index(node: list[Any], part: str, path: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"--set {path}: {part!r} is not an index of a list of {len(node)}")
    return int(part)


# ---- one-line error messages -------------------------------------------------------------------


def describe_validation_error(exc: ValidationError, raw: dict[str, Any]) -> str:
    """Pydantic's errors as one line: ``model.num_expert: unknown key (did you mean …?)``."""
    parts = []
    for err in exc.errors(include_url=False):
        loc, model_class = _resolve(err["loc"])
        where = ".".join(str(p) for p in loc) or "config"
        if err["type"] == "extra_forbidden" and model_class is not None:
            allowed = list(model_class.model_fields)
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
            parts.append(f"{where}: unknown key ({hint})")
        elif err["type"] == "union_tag_invalid":
            tag = "source" if loc and loc[0] == "data" else "name"
            choices = _tags(loc[0] if loc else "")
            parts.append(f"{where}.{tag}: {err['input'].get(tag)!r} is not one of {choices}")
        elif err["type"] == "union_tag_not_found":
            parts.append(f"{where}: missing 'source' (one of {_tags('data')})")
        elif err["type"] == "missing":
            parts.append(f"{where}: required key is missing")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{where}: {msg}" if loc else msg)
    return "; ".join(parts)


def _tags(section: Any) -> str:
    if section == "model":
        return ", ".join(MODEL_CONFIGS)
    return "table, parquet_dataset, census, movielens, synthetic, memory"


def _resolve(loc: tuple[Any, ...]) -> tuple[list[Any], type[BaseModel] | None]:
    """Drop union tags from ``loc`` and find the model class holding its last key."""
    shown: list[Any] = []
    current: Any = RunConfig
    holder: type[BaseModel] | None = None
    for part in loc:
        classes = _model_classes(current)
        if isinstance(part, int):
            shown.append(part)
            continue
        tagged = [c for c in classes if _tag_of(c) == part]
        if tagged and len(classes) > 1:
            current = tagged[0]  # a discriminated-union tag, not a key the user wrote
            continue
        shown.append(part)
        holder = classes[0] if len(classes) == 1 else None
        field = holder.model_fields.get(part) if holder is not None else None
        current = field.annotation if field is not None else None
    return shown, holder


def _model_classes(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is None:
        return []
    args = typing.get_args(annotation)
    if origin is Annotated:
        args = args[:1]
    found: list[type[BaseModel]] = []
    for arg in args:
        found.extend(_model_classes(arg))
    return found


def _tag_of(cls: type[BaseModel]) -> str | None:
    for key in ("name", "source"):
        field = cls.model_fields.get(key)
        if field is not None and isinstance(field.default, str):
            return field.default
    return None


__all__ = [
    "apply_override",
    "describe_validation_error",
    "load_config",
    "parse_config",
    "read_raw_config",
    "resolve_data_paths",
]
