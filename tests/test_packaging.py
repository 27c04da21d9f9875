"""What a wheel carries besides code: the shipped configs (package data) and py.typed.

The full check (build a wheel, install it in a fresh environment outside the checkout, run
`mmoe paper census --help` and `mmoe train` on a shipped config) takes minutes and lives in
scripts/check_wheel.sh.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from mmoe.config import load_config
from mmoe.config.shipped import find_shipped_config, shipped_config_names

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_configs_are_package_data():
    configs = resources.files("mmoe") / "configs"
    assert (configs / "census" / "group1-mmoe.yaml").is_file()
    on_disk = sorted(
        str(p.relative_to(ROOT / "configs")) for p in (ROOT / "configs").rglob("*.yaml")
    )
    assert shipped_config_names() == on_disk
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["mmoe"]
    assert "py.typed" in patterns and "configs/**/*.yaml" in patterns
    assert (resources.files("mmoe") / "py.typed").is_file()


def test_a_shipped_config_loads_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here, as after `pip install mmoe`
    assert load_config("census/group1-mmoe").model.name == "mmoe"
    assert load_config("configs/synthetic-mmoe.yaml").data.source == "synthetic"
    assert find_shipped_config("census/nope") is None
