"""The run configs shipped with mmoe (package data ``mmoe/configs``: census, synthetic, …).

In a checkout, ``src/mmoe/configs`` is a link to the repository's ``configs/``; a wheel holds a
copy, so ``mmoe train census/group1-mmoe.yaml`` and ``mmoe paper census`` work after
``pip install`` too. A config path that is not a file is looked up here by name.

Example:
    >>> "census/group1-mmoe.yaml" in shipped_config_names()
    True
    >>> find_shipped_config("census/group1-mmoe").name
    'group1-mmoe.yaml'
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def shipped_configs_dir() -> Path:
    """The folder of shipped configs inside the installed package."""
    return Path(str(resources.files("mmoe") / "configs"))


def shipped_config_names() -> list[str]:
    """Every shipped run config, relative to :func:`shipped_configs_dir` (``census/…yaml``)."""
    root = shipped_configs_dir()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.yaml"))


def find_shipped_config(name: str | Path) -> Path | None:
    """The shipped config called ``name`` (with or without ``.yaml``, ``configs/`` prefix)."""
    text = str(name).removeprefix("configs/")
    root = shipped_configs_dir()
    for candidate in (text, f"{text}.yaml"):
        path = root / candidate
        if path.is_file():
            return path
    return None


__all__ = ["find_shipped_config", "shipped_config_names", "shipped_configs_dir"]
