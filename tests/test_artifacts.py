"""Run-directory integrity: uniform file modes, cross-checks on load, migrations from version 1.

``tests/fixtures/run-v1`` is a run directory written in format version 1 by the code of commit
c5259ed (``tests/fixtures/make_run_v1.py``, run against an export of that commit), with the
predictions that code gave on five probe rows.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import mmoe
from tests.test_cli import cli

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PROBE = pd.DataFrame(
    {
        "city": ["paris", "lyon", "berlin", None, "NA"],
        "device": [1, 2, 7, 3, 2],
        "age": [30.0, np.nan, 55.5, 41.0, 20.0],
        "spend": [10.0, 0.0, 300.0, np.nan, 5.5],
    }
)


@pytest.fixture
def run_v1(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / "run-v1", tmp_path / "v1"))


@pytest.fixture
def run_v2(run_v1: Path, tmp_path: Path) -> Path:
    mmoe.load(run_v1).save(tmp_path / "v2")
    return tmp_path / "v2"


def test_version_1_loads_through_its_migration_and_predicts_as_before(run_v1: Path) -> None:
    assert json.loads((run_v1 / "config.json").read_text())["format_version"] == 1
    before = pd.read_csv(FIXTURES / "run-v1-probe-predictions.csv")
    after = mmoe.load(run_v1).predict(PROBE)
    np.testing.assert_allclose(after.to_numpy(), before.to_numpy(), rtol=0, atol=1e-6)
    assert json.loads((run_v1 / "config.json").read_text())["format_version"] == 1  # untouched


def test_saved_files_share_one_mode(run_v2: Path) -> None:
    old = os.umask(0o022)
    try:
        mmoe.load(run_v2).save(run_v2)
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in run_v2.iterdir()}
    assert set(modes.values()) == {0o644}, modes
    assert json.loads((run_v2 / "config.json").read_text())["format_version"] == 2


def damaged(run: Path, file: str, change) -> Path:
    payload = json.loads((run / file).read_text())
    change(payload)
    (run / file).write_text(json.dumps(payload))
    return run


def test_reordered_tasks_are_caught(run_v2: Path) -> None:
    damaged(run_v2, "preprocessor.json", lambda p: p["tasks"].reverse())
    with pytest.raises(mmoe.ArtifactError) as err:
        mmoe.load(run_v2)
    assert "preprocessor.json lists the tasks ['amount', 'click'] but config.json lists" in str(
        err.value
    )
    damaged(run_v2, "preprocessor.json", lambda p: p["tasks"].reverse())
    damaged(run_v2, "config.json", lambda p: p["tasks"].reverse())
    damaged(run_v2, "preprocessor.json", lambda p: p["tasks"].reverse())
    with pytest.raises(mmoe.ArtifactError, match="model.safetensors was trained for the tasks"):
        mmoe.load(run_v2)  # both JSON files agree, the weights' own task list does not


def test_vocabulary_of_another_size_names_the_files_and_features(run_v2: Path, capsys) -> None:
    damaged(run_v2, "preprocessor.json", lambda p: p["vocabularies"]["city"].append("rome"))
    damaged(run_v2, "config.json", lambda p: p["tasks"][0].update(type="regression"))
    code, _, err = cli("evaluate", run_v2, "test", capsys=capsys)
    lines = err.strip().splitlines()
    assert code == 1 and "Traceback" not in err
    assert lines[0].startswith("error: ") and "do not belong together (1 problem)" in lines[0]
    assert len(lines) == 2 and "task 'click' is regression in config.json" in lines[1]
    damaged(run_v2, "config.json", lambda p: p["tasks"][0].update(type="binary"))
    with pytest.raises(mmoe.ArtifactError) as exc:
        mmoe.load(run_v2)
    message = str(exc.value)
    assert "vocabularies ([city 6, device 4]" in message and "need 10 embedding rows" in message
    assert "model.safetensors has 9" in message and not message.rstrip().endswith(":")


def test_newer_and_invalid_versions(run_v2: Path) -> None:
    damaged(run_v2, "config.json", lambda p: p.update(format_version=99))
    with pytest.raises(mmoe.ArtifactError, match="newer mmoe .*upgrade mmoe"):
        mmoe.load(run_v2)
    damaged(run_v2, "config.json", lambda p: p.update(format_version="2"))
    with pytest.raises(mmoe.ArtifactError, match="no valid format_version"):
        mmoe.load(run_v2)
