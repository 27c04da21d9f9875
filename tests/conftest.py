"""Shared fixtures: small slices of the real data in ../shared/data, tiny synthetic problems.

Tests that need ../shared/data skip when it is absent (a user's own clone) and fail instead when
MMOE_REQUIRE_DATA=1, which .ci/run sets so CI always runs them.

The suite checks exact, CPU-defined results (bit-identical resume, evaluate == train's metrics), so
it hides GPUs from itself and from the processes it starts (``training.device: auto`` then means
the CPU). ``MMOE_TEST_CUDA=1 pytest tests/test_cuda.py`` runs the CUDA tests on a GPU machine.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pyarrow as pa
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MMOE_SHARED_DATA", ROOT.parent / "shared" / "data"))
CENSUS_DIR = SHARED_DATA / "census-income"
MOVIELENS_DIR = SHARED_DATA / "movielens-100k"
CENSUS_ROWS = 3000  # rows taken from each census file for the fast tests

if os.environ.get("MMOE_TEST_CUDA") != "1":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch first looks for a GPU


def require(path: Path) -> Path:
    """``path``, or skip (fail under MMOE_REQUIRE_DATA=1) when it does not exist."""
    if path.exists():
        return path
    reason = f"{path} is absent: these tests read the shared data beside the checkout"
    if os.environ.get("MMOE_REQUIRE_DATA") == "1":
        pytest.fail(reason + " (MMOE_REQUIRE_DATA=1 makes this a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def census_dir() -> Path:
    """The full UCI census files."""
    return require(CENSUS_DIR)


@pytest.fixture(scope="session")
def small_census_dir(tmp_path_factory: pytest.TempPathFactory, census_dir: Path) -> Path:
    """A directory with the first CENSUS_ROWS lines of each census file, uncompressed."""
    out = tmp_path_factory.mktemp("census")
    for stem in ("census-income.data", "census-income.test"):
        with gzip.open(census_dir / f"{stem}.gz", "rt") as f:
            lines = [next(f) for _ in range(CENSUS_ROWS)]
        (out / stem).write_text("".join(lines))
    return out


@pytest.fixture(scope="session")
def census_table(small_census_dir: Path) -> pa.Table:
    """CENSUS_ROWS rows of the census training file, parsed."""
    from mmoe.data.census import read_census_file

    return read_census_file(small_census_dir / "census-income.data")


@pytest.fixture(scope="session")
def census_config_raw(small_census_dir: Path) -> dict:
    """The shipped group-1 MMoE config pointed at the small census files, for a few quick epochs."""
    import yaml

    raw = yaml.safe_load((ROOT / "configs/census/group1-mmoe.yaml").read_text())
    raw["data"]["data_dir"] = str(small_census_dir)
    raw["training"].update(epochs=5, batch_size=128, learning_rate=0.005)
    return raw


TINY_MODELS = {
    "shared_bottom": {"name": "shared_bottom", "bottom_hidden": [16], "tower_hidden": [4]},
    "omoe": {"name": "omoe", "num_experts": 3, "expert_hidden": [8], "tower_hidden": [4]},
    "mmoe": {"name": "mmoe", "num_experts": 3, "expert_hidden": [8], "tower_hidden": [4]},
}


@pytest.fixture(scope="session")
def tiny_census_runs(tmp_path_factory: pytest.TempPathFactory, census_config_raw: dict) -> dict:
    """A run directory per architecture: tiny models, one epoch on the small census files."""
    import copy

    import mmoe

    runs = {}
    for name, model in TINY_MODELS.items():
        raw = copy.deepcopy(census_config_raw)
        raw["model"] = dict(model)
        raw["training"].update(epochs=1, batch_size=256)
        out = tmp_path_factory.mktemp("runs") / name
        mmoe.train(raw, out_dir=out, progress=False)
        runs[name] = out
    return runs
